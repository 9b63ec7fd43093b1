//! `containerd-stack man` and `containerd-stack completions`: the manual pages and shell
//! completions, generated from the same clap definition the command parses with.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
pub struct ManArgs {
    /// Write `containerd-stack.1` and one page per subcommand (`containerd-stack-build-deb.1`,
    /// …) into this directory; without it, print the main page.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn man(args: ManArgs) -> Result<()> {
    let cmd = super::command();
    let Some(dir) = args.out else {
        let mut out = std::io::stdout().lock();
        return clap_mangen::Man::new(cmd)
            .render(&mut out)
            .context("cannot write the manual page to stdout");
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    clap_mangen::generate_to(cmd, &dir)
        .with_context(|| format!("{}: cannot write the manual pages", dir.display()))?;
    println!("{}", dir.display());
    Ok(())
}

#[derive(Parser)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs) -> Result<()> {
    let mut cmd = super::command();
    clap_complete::generate(
        args.shell,
        &mut cmd,
        "containerd-stack",
        &mut std::io::stdout(),
    );
    Ok(())
}
