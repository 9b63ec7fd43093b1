//! `containerd-stack init [DIR]`: a starting point for a team's own repository — the
//! default stack.toml, pins and comments included, and with `--templates` the built-in
//! templates, ready to edit.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use containerd_stack::render::TEMPLATES;
use containerd_stack::stack::DEFAULT_STACK;

use super::write_new;

/// Where `--templates` writes them, relative to DIR; stack.toml points there.
const TEMPLATES_DIR: &str = "debian-templates";

#[derive(Parser)]
pub struct Args {
    /// The directory to write into (created if missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Also write the built-in templates into DIR/debian-templates and use them.
    #[arg(long)]
    templates: bool,
}

pub fn run(args: Args) -> Result<()> {
    let stack_path = args.dir.join("stack.toml");
    let templates_dir = args.dir.join(TEMPLATES_DIR);
    // Nothing is overwritten: a team's edits are never lost to a second `init`.
    if stack_path.exists() {
        bail!(
            "{}: already exists; refusing to overwrite it",
            stack_path.display()
        );
    }
    if args.templates && templates_dir.exists() {
        bail!(
            "{}: already exists; refusing to overwrite it",
            templates_dir.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("{}: cannot create", args.dir.display()))?;
    let mut stack = DEFAULT_STACK.to_owned();
    if args.templates {
        std::fs::create_dir(&templates_dir)
            .with_context(|| format!("{}: cannot create", templates_dir.display()))?;
        for (name, text) in TEMPLATES {
            write_new(
                &templates_dir.join(format!("{name}.hbs")),
                text.as_bytes(),
                0o644,
            )?;
        }
        stack = with_templates_key(&stack)?;
    }
    write_new(&stack_path, stack.as_bytes(), 0o644)?;
    println!("{}", stack_path.display());
    if args.templates {
        println!(
            "{}/ ({} templates)",
            templates_dir.display(),
            TEMPLATES.len()
        );
    }
    Ok(())
}

/// The default stack with `[package] templates` pointing at the written templates.
fn with_templates_key(stack: &str) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = stack.parse().context("the built-in stack.toml")?;
    let package = doc["package"]
        .as_table_mut()
        .context("the built-in stack.toml has no [package]")?;
    package["templates"] = toml_edit::value(TEMPLATES_DIR);
    package
        .key_mut("templates")
        .expect("just set")
        .leaf_decor_mut()
        .set_prefix(
            "# Templates used in place of the built-in ones; a file missing here falls back to\n# the built-in one.\n",
        );
    Ok(doc.to_string())
}
