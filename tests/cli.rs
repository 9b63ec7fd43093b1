//! The `containerd-stack` command as a new user meets it: `init` in an empty directory,
//! `build-deb` from another directory with a team's own templates, the version line, the
//! manual pages and completions, and one-line errors with a hint.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use containerd_stack::deb::read::read_deb;
use containerd_stack::render::TEMPLATES;
use containerd_stack::stack::{ComponentKind, Stack, DEFAULT_STACK};
use tempfile::TempDir;
use testkit::{FakeRelease, Mirror};

fn containerd_stack(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_containerd-stack"))
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join(".cache"))
        .output()
        .expect("run containerd-stack")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn init_writes_the_default_stack_and_never_overwrites() {
    let dir = TempDir::new().unwrap();
    let o = containerd_stack(dir.path(), &["init", "ops"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written = fs::read_to_string(dir.path().join("ops/stack.toml")).unwrap();
    assert_eq!(written, DEFAULT_STACK);
    assert!(!dir.path().join("ops/debian-templates").exists());

    let o = containerd_stack(dir.path(), &["init", "ops"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("stack.toml: already exists; refusing to overwrite it"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(
        fs::read_to_string(dir.path().join("ops/stack.toml")).unwrap(),
        written
    );
}

#[test]
fn init_with_templates_writes_every_template_and_points_the_stack_at_them() {
    let dir = TempDir::new().unwrap();
    let o = containerd_stack(dir.path(), &["init", "--templates"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (name, text) in TEMPLATES {
        let path = dir.path().join(format!("debian-templates/{name}.hbs"));
        assert_eq!(&fs::read_to_string(&path).unwrap(), text, "{name}");
    }
    let stack = Stack::load(&dir.path().join("stack.toml")).unwrap();
    assert_eq!(
        stack.package.templates.as_deref(),
        Some(dir.path().join("debian-templates").as_path())
    );
}

#[test]
fn the_version_line_names_the_default_pins() {
    let dir = TempDir::new().unwrap();
    let o = containerd_stack(dir.path(), &["--version"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("containerd-stack 0."), "{out}");
    for c in &Stack::default_stack().components {
        assert!(out.contains(&format!("{} {}", c.kind, c.version)), "{out}");
    }
}

#[test]
fn manual_pages_and_completions_come_from_the_definitions() {
    let dir = TempDir::new().unwrap();
    let o = containerd_stack(dir.path(), &["man", "--out", "man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for page in [
        "containerd-stack.1",
        "containerd-stack-build-deb.1",
        "containerd-stack-repo-publish.1",
        "containerd-stack-init.1",
    ] {
        let text = fs::read_to_string(dir.path().join("man").join(page)).unwrap();
        assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{page} is not roff");
        assert!(text.contains(".TH"), "{page}");
    }
    let build = fs::read_to_string(dir.path().join("man/containerd-stack-build-deb.1")).unwrap();
    assert!(
        build.contains("templates"),
        "the build-deb page lists --templates"
    );
    for shell in ["bash", "zsh", "fish"] {
        let o = containerd_stack(dir.path(), &["completions", shell]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{shell}");
        assert!(
            text.contains("build-deb") && text.contains("--sign-key"),
            "{shell}"
        );
    }
}

/// A team's directory with a stack pinning a generated release, served on loopback.
struct Team {
    dir: TempDir,
    mirror: Mirror,
}

fn team() -> Team {
    let dir = TempDir::new().unwrap();
    let release = FakeRelease::write(
        &dir.path().join("mirror"),
        &[containerd_stack::DebArch::Amd64],
    );
    fs::create_dir(dir.path().join("ops")).unwrap();
    fs::write(
        dir.path().join("ops/stack.toml"),
        release.stack_toml(&ComponentKind::ALL),
    )
    .unwrap();
    let mirror = Mirror::serve(dir.path().join("mirror"));
    Team { dir, mirror }
}

impl Team {
    /// `build-deb` run from `ops/sub`, with paths relative to it.
    fn build(&self, extra: &[&str]) -> Output {
        let sub = self.dir.path().join("ops/sub");
        fs::create_dir_all(&sub).unwrap();
        let mirror = self.mirror.url();
        let mut args = vec![
            "build-deb",
            "--stack",
            "../stack.toml",
            "--mirror",
            &mirror,
            "--out",
            "../dist",
            "--arch",
            "amd64",
            "--compression",
            "gzip",
        ];
        args.extend_from_slice(extra);
        containerd_stack(&sub, &args)
    }

    fn package(&self) -> std::path::PathBuf {
        let dist = self.dir.path().join("ops/dist");
        let mut debs: Vec<_> = fs::read_dir(&dist)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        assert_eq!(debs.len(), 1, "{debs:?}");
        debs.remove(0)
    }
}

#[test]
fn a_team_template_replaces_the_built_in_one_without_a_rebuild() {
    let t = team();
    let o = t.build(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stock = read_deb(&t.package()).unwrap();
    let unit = |deb: &containerd_stack::deb::read::DebContents| {
        String::from_utf8(
            deb.data_entry("./usr/lib/systemd/system/containerd.service")
                .and_then(|e| e.content.clone())
                .unwrap(),
        )
        .unwrap()
    };
    assert!(!unit(&stock).contains("LimitNOFILE=1048576"));

    let templates = t.dir.path().join("ops/own-templates");
    fs::create_dir(&templates).unwrap();
    let own = TEMPLATES
        .iter()
        .find(|(n, _)| *n == "containerd.service")
        .unwrap()
        .1
        .replace("[Service]\n", "[Service]\nLimitNOFILE=1048576\n");
    fs::write(templates.join("containerd.service.hbs"), own).unwrap();
    let o = t.build(&["--templates", "../own-templates"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let edited = read_deb(&t.package()).unwrap();
    assert!(unit(&edited).contains("LimitNOFILE=1048576"));
    // Every other template is the built-in one.
    assert_eq!(
        edited.control_files["postinst"].1,
        stock.control_files["postinst"].1
    );
}

#[test]
fn a_template_needing_a_variable_the_build_lacks_is_named_and_nothing_is_written() {
    let t = team();
    let templates = t.dir.path().join("ops/own-templates");
    fs::create_dir(&templates).unwrap();
    fs::write(
        templates.join("crictl.yaml.hbs"),
        "runtime-endpoint: {{containerd_socket}}\n",
    )
    .unwrap();
    let o = t.build(&["--templates", "../own-templates"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("own-templates/crictl.yaml.hbs"), "{e}");
    assert!(e.contains("containerd_socket"), "{e}");
    assert!(
        !t.dir.path().join("ops/dist").exists()
            || fs::read_dir(t.dir.path().join("ops/dist"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn errors_are_one_line_with_the_hint_the_command_knows() {
    let t = team();
    let o = t.build(&["--arch", "riscv64"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with(
            "error: components.containerd.sha256.riscv64: no sha256 is pinned for riscv64"
        ),
        "{e}"
    );
    assert!(
        e.ends_with("; run `containerd-stack lock --arch riscv64`, or add the pin to stack.toml\n"),
        "{e}"
    );
    // A missing file is named once, with the system's reason after it.
    let o = containerd_stack(t.dir.path(), &["build-deb", "--stack", "nowhere.toml"]);
    let e = stderr(&o);
    assert_eq!(
        e,
        "error: nowhere.toml: No such file or directory (os error 2)\n"
    );
}
