//! The install-time half of the package: the config editor the postinst includes, run
//! with `sh` on the real `containerd config default` output of each containerd release line
//! (tests/fixtures/containerd-config), must put the cgroup driver, the sandbox image and
//! the CNI plugin directory in the tables of that output's schema and change nothing else;
//! and every rendered maintainer script must pass `shellcheck -s sh`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use containerd_stack::build::{render_template, MAINTAINER_SCRIPTS};
use containerd_stack::layout::FhsTree;
use containerd_stack::{DebArch, Stack};
use tempfile::TempDir;
use toml::{Table, Value};

const IMAGE: &str = "registry.example.org/k8s/pause:3.99";
const CNI_DIR: &str = "/usr/lib/cni";
/// containerd's registry hosts directory, the CRI's `config_path`.
const HOSTS_DIR: &str = "/etc/containerd/certs.d";

/// Each fixture: the containerd tag it was printed by, its config schema `version`, the key
/// that holds the CNI plugin directory, and whether it prints a `SystemdCgroup` line.
const FIXTURES: &[(&str, i64, &str, bool)] = &[
    ("v1.6.20", 2, "bin_dir", true),
    ("v1.7.34", 2, "bin_dir", true),
    // containerd#12101: 2.0.0–2.0.6 and 2.1.0–2.1.4 print no SystemdCgroup line.
    ("v2.0.0", 3, "bin_dir", false),
    ("v2.0.11", 3, "bin_dir", true),
    ("v2.1.4", 3, "bin_dirs", false),
    ("v2.1.5", 3, "bin_dirs", true),
    ("v2.2.7", 3, "bin_dirs", true),
    ("v2.3.4", 4, "bin_dirs", true),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/containerd-config")
}

fn stack() -> Stack {
    let pin = "ab".repeat(32);
    let mut s = String::from(
        "[package]\nname = \"containerd-stack\"\nrevision = \"1\"\nmaintainer = \"Test <test@example.org>\"\n",
    );
    for (k, v) in [
        ("containerd", "2.3.4"),
        ("runc", "1.4.3"),
        ("cni-plugins", "1.9.1"),
        ("crictl", "1.36.0"),
    ] {
        s.push_str(&format!(
            "[components.{k}]\nversion = \"{v}\"\n[components.{k}.sha256]\namd64 = \"{pin}\"\n"
        ));
    }
    s.push_str(&format!(
        "[settings]\nsystemd_cgroup = false\nsandbox_image = \"{IMAGE}\"\ncni_bin_dir = \"{CNI_DIR}\"\n"
    ));
    Stack::parse(&s, Path::new("stack.toml")).unwrap()
}

/// The files a real amd64 build would ship, as far as the templates look at them.
fn tree() -> FhsTree {
    let mut t = FhsTree::default();
    for p in [
        "usr/bin/containerd",
        "usr/bin/ctr",
        "usr/sbin/runc",
        "usr/lib/cni/bridge",
        "usr/bin/crictl",
    ] {
        t.add_inline(p, 0o755, b"x".to_vec()).unwrap();
    }
    t
}

fn render(name: &str) -> String {
    render_template(&stack(), DebArch::Amd64, &tree(), name).unwrap()
}

/// The config editor, the postinst's partial, rendered on its own.
fn editor() -> String {
    let editor = render("config-edit.sh");
    assert!(
        render("postinst").contains(&editor),
        "the postinst does not include config-edit.sh"
    );
    editor
}

/// Runs `script` with `sh`, the editor sourced first, `args` as `$1…`, and the awk
/// implementation `awk` (a command line) as `awk`.
struct Shell {
    dir: TempDir,
}

impl Shell {
    fn new(awk: &str) -> Shell {
        Shell::sourcing(awk, &editor())
    }

    /// A shell that sources `script` (rendered partials) before each command.
    fn sourcing(awk: &str, script: &str) -> Shell {
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join("editor.sh"), script).unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        write_exec(&bin.join("awk"), &format!("#!/bin/sh\nexec {awk} \"$@\"\n"));
        Shell { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, script: &str, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("sh")
            .arg("-c")
            .arg(format!(". \"$EDITOR_SH\"\n{script}"))
            .arg("sh")
            .args(args)
            .env("EDITOR_SH", self.path("editor.sh"))
            .env("PATH", path)
            .current_dir(self.dir.path())
            .output()
            .expect("run sh")
    }

    /// config_edit on `input`; the output file's text.
    fn edit(&self, input: &Path, cgroup: &str, image: &str, cni: &str) -> String {
        let out = self.path("out.toml");
        let r = self.run(
            "config_edit \"$1\" \"$2\" \"$3\" \"$4\" \"$5\" \"$6\"",
            &[
                input.to_str().unwrap(),
                cgroup,
                image,
                cni,
                HOSTS_DIR,
                out.to_str().unwrap(),
            ],
        );
        assert!(
            r.status.success(),
            "config_edit {} failed: {}",
            input.display(),
            String::from_utf8_lossy(&r.stderr)
        );
        fs::read_to_string(out).unwrap()
    }
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every awk the machine has: mawk (what Debian's minbase has, required here), and gawk
/// and busybox's where they are installed.
fn awks() -> Vec<&'static str> {
    assert!(
        Path::new("/usr/bin/mawk").exists(),
        "mawk is not installed (the awk of a minimal Debian): apt-get install mawk"
    );
    let mut v = vec!["/usr/bin/mawk"];
    if Path::new("/usr/bin/gawk").exists() {
        v.push("/usr/bin/gawk");
    }
    if Path::new("/usr/bin/busybox").exists() {
        v.push("/usr/bin/busybox awk");
    }
    v
}

fn parse(text: &str, what: &str) -> Table {
    text.parse::<Table>()
        .unwrap_or_else(|e| panic!("{what} is not valid TOML: {e}\n{text}"))
}

/// The table at `path`, created (empty) where it is missing.
fn table_mut<'a>(t: &'a mut Table, path: &[&str]) -> &'a mut Table {
    path.iter().fold(t, |t, seg| {
        t.entry(seg.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("{seg} is not a table"))
    })
}

fn get<'a>(t: &'a Table, path: &[&str], key: &str) -> Option<&'a Value> {
    let mut t = t;
    for seg in path {
        t = t.get(*seg)?.as_table()?;
    }
    t.get(key)
}

/// Where each setting lives, per schema version: REFERENCE.md's table, and containerd's
/// docs/cri/config.md of each release line.
struct Tables {
    cgroup: Vec<&'static str>,
    sandbox: Vec<&'static str>,
    sandbox_key: &'static str,
    cni: Vec<&'static str>,
    registry: Vec<&'static str>,
}

fn tables(schema: i64) -> Tables {
    match schema {
        2 => Tables {
            cgroup: vec![
                "plugins",
                "io.containerd.grpc.v1.cri",
                "containerd",
                "runtimes",
                "runc",
                "options",
            ],
            sandbox: vec!["plugins", "io.containerd.grpc.v1.cri"],
            sandbox_key: "sandbox_image",
            cni: vec!["plugins", "io.containerd.grpc.v1.cri", "cni"],
            registry: vec!["plugins", "io.containerd.grpc.v1.cri", "registry"],
        },
        3 | 4 => Tables {
            cgroup: vec![
                "plugins",
                "io.containerd.cri.v1.runtime",
                "containerd",
                "runtimes",
                "runc",
                "options",
            ],
            sandbox: vec!["plugins", "io.containerd.cri.v1.images", "pinned_images"],
            sandbox_key: "sandbox",
            cni: vec!["plugins", "io.containerd.cri.v1.runtime", "cni"],
            registry: vec!["plugins", "io.containerd.cri.v1.images", "registry"],
        },
        v => panic!("no tables for schema {v}"),
    }
}

/// What the fixture must become: the four settings set, nothing else touched.
fn expected(
    default: &Table,
    schema: i64,
    cni_key: &str,
    cgroup: bool,
    image: &str,
    cni: &str,
) -> Table {
    let t = tables(schema);
    let mut want = default.clone();
    table_mut(&mut want, &t.cgroup).insert("SystemdCgroup".into(), Value::Boolean(cgroup));
    table_mut(&mut want, &t.sandbox).insert(t.sandbox_key.into(), Value::String(image.into()));
    let dir = match cni_key {
        "bin_dirs" => Value::Array(vec![Value::String(cni.into())]),
        _ => Value::String(cni.into()),
    };
    table_mut(&mut want, &t.cni).insert(cni_key.into(), dir);
    table_mut(&mut want, &t.registry).insert("config_path".into(), Value::String(HOSTS_DIR.into()));
    want
}

#[test]
fn every_fixture_is_tested() {
    let mut files: Vec<String> = fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|f| format!("{}.toml", f.0)).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn fixtures_are_what_the_reference_says() {
    for &(tag, schema, cni_key, has_cgroup) in FIXTURES {
        let default = parse(
            &fs::read_to_string(fixture_dir().join(format!("{tag}.toml"))).unwrap(),
            tag,
        );
        assert_eq!(
            default.get("version").and_then(Value::as_integer),
            Some(schema),
            "{tag}"
        );
        let t = tables(schema);
        assert_eq!(
            get(&default, &t.cgroup, "SystemdCgroup").is_some(),
            has_cgroup,
            "{tag}"
        );
        assert!(
            get(&default, &t.cni, cni_key).is_some(),
            "{tag}: no {cni_key}"
        );
        // The key is there to be set: appending a second registry table would break the
        // file (a duplicate table).
        assert!(
            get(&default, &t.registry, "config_path").is_some(),
            "{tag}: no registry config_path"
        );
        let image = get(&default, &t.sandbox, t.sandbox_key).and_then(Value::as_str);
        assert!(
            image.is_some_and(|i| i.starts_with("registry.k8s.io/pause:")),
            "{tag}: {image:?}"
        );
    }
}

#[test]
fn settings_land_in_the_tables_of_each_schema_and_nothing_else_changes() {
    for awk in awks() {
        let sh = Shell::new(awk);
        for &(tag, schema, cni_key, _) in FIXTURES {
            let path = fixture_dir().join(format!("{tag}.toml"));
            let default = parse(&fs::read_to_string(&path).unwrap(), tag);
            for (cgroup, image, cni) in [
                (true, IMAGE, CNI_DIR),
                (false, "registry.k8s.io/pause:3.10.2", "/opt/cni/bin"),
            ] {
                let what = format!("{tag} with {awk}, SystemdCgroup {cgroup}");
                let text = sh.edit(&path, &cgroup.to_string(), image, cni);
                let got = parse(&text, &what);
                let t = tables(schema);
                assert_eq!(
                    get(&got, &t.cgroup, "SystemdCgroup"),
                    Some(&Value::Boolean(cgroup)),
                    "{what}"
                );
                assert_eq!(
                    get(&got, &t.sandbox, t.sandbox_key).and_then(Value::as_str),
                    Some(image),
                    "{what}"
                );
                let want = expected(&default, schema, cni_key, cgroup, image, cni);
                assert_eq!(
                    get(&got, &t.cni, cni_key),
                    get(&want, &t.cni, cni_key),
                    "{what}"
                );
                assert!(
                    got == want,
                    "{what}: more than the four settings changed:\n{text}"
                );
            }
        }
    }
}

#[test]
fn a_missing_systemd_cgroup_line_is_inserted_under_the_runc_options_header() {
    // containerd#12101: a sed that rewrites `SystemdCgroup = false` does nothing on 2.0/2.1.
    let sh = Shell::new("/usr/bin/mawk");
    for tag in ["v2.0.0", "v2.1.4"] {
        let path = fixture_dir().join(format!("{tag}.toml"));
        assert!(!fs::read_to_string(&path).unwrap().contains("SystemdCgroup"));
        let text = sh.edit(&path, "true", IMAGE, CNI_DIR);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| {
                l.trim()
                    == "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]"
            })
            .expect("runc options header");
        assert_eq!(lines[at + 1].trim(), "SystemdCgroup = true", "{tag}");
        assert_eq!(text.matches("SystemdCgroup").count(), 1, "{tag}");
    }
}

#[test]
fn editing_twice_changes_nothing() {
    let sh = Shell::new("/usr/bin/mawk");
    for &(tag, ..) in FIXTURES {
        let once = sh.edit(
            &fixture_dir().join(format!("{tag}.toml")),
            "true",
            IMAGE,
            CNI_DIR,
        );
        let first = sh.path("first.toml");
        fs::write(&first, &once).unwrap();
        let twice = sh.edit(&first, "true", IMAGE, CNI_DIR);
        assert_eq!(once, twice, "{tag}");
    }
}

#[test]
fn tables_are_matched_whatever_their_quoting_and_created_where_missing() {
    let sh = Shell::new("/usr/bin/mawk");
    let input = sh.path("in.toml");
    // Double-quoted 2.x names, a decoy SystemdCgroup in another runtime, a multi-line
    // bin_dirs whose elements look like headers, and no pinned_images table at all.
    fs::write(
        &input,
        r#"version = 3

[plugins]
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.kata.options]
    SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
    # a comment
    SystemdCgroup = false # trailing
  [plugins . "io.containerd.cri.v1.runtime" . 'cni']
    bin_dirs = [
      '[plugins.x]',
      "/opt/cni/bin",
    ]
    conf_dir = '/etc/cni/net.d'
"#,
    )
    .unwrap();
    let text = sh.edit(&input, "true", IMAGE, CNI_DIR);
    let got = parse(&text, "edited synthetic config");
    let runtime = ["plugins", "io.containerd.cri.v1.runtime"];
    let t = tables(3);
    assert_eq!(
        get(&got, &t.cgroup, "SystemdCgroup"),
        Some(&Value::Boolean(true))
    );
    let kata = [&runtime[..], &["containerd", "runtimes", "kata", "options"]].concat();
    assert_eq!(
        get(&got, &kata, "SystemdCgroup"),
        Some(&Value::Boolean(false))
    );
    assert_eq!(
        get(&got, &t.sandbox, "sandbox").and_then(Value::as_str),
        Some(IMAGE)
    );
    assert_eq!(
        get(&got, &t.cni, "bin_dirs"),
        Some(&Value::Array(vec![Value::String(CNI_DIR.into())]))
    );
    assert_eq!(
        get(&got, &t.cni, "conf_dir").and_then(Value::as_str),
        Some("/etc/cni/net.d")
    );
    assert!(!text.contains("[plugins.x]"), "{text}");
}

#[test]
fn an_unknown_schema_version_is_refused_by_name() {
    let sh = Shell::new("/usr/bin/mawk");
    let input = sh.path("in.toml");
    fs::write(&input, "version = 5\n").unwrap();
    let r = sh.run(
        "config_edit \"$1\" true img /x /h \"$2\"",
        &[input.to_str().unwrap(), "out.toml"],
    );
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("schema version '5'"), "{err}");
}

/// A stand-in for `containerd --config FILE config dump` that prints `dump` (FILE itself
/// when `dump` is None): containerd reads no more than the file here.
fn fake_containerd(sh: &Shell, dump: Option<&Path>) -> PathBuf {
    let path = sh.path("containerd");
    let body = match dump {
        Some(d) => format!("cat '{}'", d.display()),
        None => "cat \"$2\"".to_owned(),
    };
    write_exec(
        &path,
        &format!("#!/bin/sh\n[ \"$1 $3 $4\" = '--config config dump' ] || exit 9\n{body}\n"),
    );
    path
}

#[test]
fn the_effective_config_is_checked_and_each_wrong_value_named() {
    let sh = Shell::new("/usr/bin/mawk");
    for &(tag, ..) in FIXTURES {
        let default = fixture_dir().join(format!("{tag}.toml"));
        let check = "config_edit \"$2\" true \"$3\" \"$4\" \"$5\" out.toml && config_check \"$1\" out.toml true \"$3\" \"$4\" \"$5\"";

        let faithful = fake_containerd(&sh, None);
        let r = sh.run(
            check,
            &[
                faithful.to_str().unwrap(),
                default.to_str().unwrap(),
                IMAGE,
                CNI_DIR,
                HOSTS_DIR,
            ],
        );
        assert!(
            r.status.success(),
            "{tag}: {}",
            String::from_utf8_lossy(&r.stderr)
        );

        // A containerd whose effective config is still the default (an import overriding
        // everything, say): all four settings are named.
        let stubborn = fake_containerd(&sh, Some(&default));
        let r = sh.run(
            check,
            &[
                stubborn.to_str().unwrap(),
                default.to_str().unwrap(),
                IMAGE,
                CNI_DIR,
                HOSTS_DIR,
            ],
        );
        assert!(!r.status.success(), "{tag}");
        let err = String::from_utf8_lossy(&r.stderr);
        for what in [
            "SystemdCgroup = ",
            "the sandbox image",
            "the CNI plugin directory",
            "the registry hosts directory",
        ] {
            assert!(err.contains(what), "{tag}: {what} not named in:\n{err}");
        }
    }
}

#[test]
fn a_config_containerd_refuses_fails_the_check() {
    let sh = Shell::new("/usr/bin/mawk");
    let refusing = sh.path("containerd");
    write_exec(
        &refusing,
        "#!/bin/sh\necho 'failed to load TOML: bad' >&2\nexit 1\n",
    );
    let default = fixture_dir().join("v2.3.4.toml");
    let r = sh.run(
        "config_edit \"$2\" true img /x /h out.toml && config_check \"$1\" out.toml true img /x /h",
        &[refusing.to_str().unwrap(), default.to_str().unwrap()],
    );
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("containerd refuses the generated config: failed to load TOML: bad"),
        "{err}"
    );
}

/// The postinst's mirrors partial, with what it needs of the shared one.
fn mirrors_shell(awk: &str) -> Shell {
    let script = format!(
        "PACKAGE=containerd-stack\n{}\n{}",
        render("generated-files.sh"),
        render("registry-mirrors.sh")
    );
    assert!(render("postinst").contains(&render("registry-mirrors.sh")));
    Shell::sourcing(awk, &script)
}

#[test]
fn debconf_mirrors_are_checked_by_the_rules_stack_toml_has() {
    use containerd_stack::stack::{is_mirror_url, is_registry_host};
    let hosts = [
        "docker.io",
        "registry.k8s.io",
        "10.0.0.5:5000",
        "my-registry.example.org:443",
        "_default",
        "Docker.io",
        "docker.io:0",
        "docker.io:65536",
        "docker.io:5000:1",
        "-bad.example.org",
        "bad-.example.org",
        "a..b",
        "docker.io.",
        "",
        "x_y.org",
        &format!("{}.org", "a".repeat(64)),
    ];
    let urls = [
        "https://mirror.example.org",
        "http://10.0.0.5:5000",
        "https://mirror.example.org/v2/proxy-cache",
        "https://m.example.org/a%20b+c~d",
        "ftp://mirror.example.org",
        "https://",
        "https://_default",
        "https://m.example.org/a b",
        "https://m.example.org?x=1",
        "https://m.example.org/\"quote",
        "https://M.example.org",
        "mirror.example.org",
    ];
    for awk in awks() {
        let sh = mirrors_shell(awk);
        let parse = |line: &str| sh.run("mirrors_parse \"$1\"", &[line]);
        for host in hosts {
            let r = parse(&format!("{host}=https://mirror.example.org"));
            assert_eq!(
                r.status.success(),
                is_registry_host(host),
                "{awk}: host {host:?}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            if !r.status.success() {
                assert!(r.stdout.is_empty(), "{awk}: {host:?}: printed something");
                let err = String::from_utf8_lossy(&r.stderr);
                assert!(err.contains(&format!("\"{host}\"")), "{awk}: {err}");
                assert_eq!(err.lines().count(), 1, "{awk}: {err}");
            }
        }
        for url in urls {
            let r = parse(&format!("docker.io=https://first.example.org,{url}"));
            assert_eq!(
                r.status.success(),
                is_mirror_url(url),
                "{awk}: url {url:?}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
        }
        let r = parse("docker.io=https://m1.example.org,https://m2.example.org  registry.k8s.io=http://10.0.0.5:5000 _default=https://all.example.org");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert_eq!(
            String::from_utf8_lossy(&r.stdout),
            "docker.io https://m1.example.org https://m2.example.org\nregistry.k8s.io http://10.0.0.5:5000\n_default https://all.example.org\n"
        );
        assert!(parse("").status.success() && parse("").stdout.is_empty());
        for (line, named) in [
            ("docker.io", "\"docker.io\" is not host=URL"),
            ("docker.io=", "\"docker.io\" lists no mirror"),
            (
                "docker.io=https://a.org docker.io=https://b.org",
                "\"docker.io\" is given twice",
            ),
            (
                "quay.io=https://a.org,,https://b.org",
                "\"\" (for quay.io) is not a mirror URL",
            ),
        ] {
            let r = parse(line);
            assert!(!r.status.success(), "{awk}: {line:?} was accepted");
            let err = String::from_utf8_lossy(&r.stderr);
            assert!(err.contains(named), "{awk}: {line:?}: {err}");
        }
    }
}

#[test]
fn hosts_files_try_the_mirrors_in_order_then_the_registry() {
    let sh = mirrors_shell("/usr/bin/mawk");
    for (host, server) in [
        ("docker.io", Some("https://registry-1.docker.io")),
        ("10.0.0.5:5000", Some("https://10.0.0.5:5000")),
        ("_default", None),
    ] {
        let r = sh.run(
            "hosts_toml \"$1\" http://127.0.0.1:5000 https://backup.example.org/cache",
            &[host],
        );
        assert!(r.status.success());
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(
            text.starts_with("# Generated by containerd-stack from debconf's containerd-stack/registry_mirrors.\n"),
            "{text}"
        );
        let t = parse(&text, host);
        assert_eq!(t.get("server").and_then(Value::as_str), server, "{host}");
        let mirrors = t["host"].as_table().unwrap();
        // toml's Table keeps keys sorted: the file's own order is checked on the text.
        let first = text.find("[host.\"http://127.0.0.1:5000\"]").unwrap();
        let second = text
            .find("[host.\"https://backup.example.org/cache\"]")
            .unwrap();
        assert!(first < second, "{text}");
        for (_, m) in mirrors {
            assert_eq!(
                m["capabilities"],
                Value::Array(vec!["pull".into(), "resolve".into()])
            );
        }
        assert_eq!(mirrors.len(), 2);
    }
}

/// Under debconf, ucf reads its answers from its stdin: a loop over the registries that
/// fed the list through stdin wrote the first registry's file and stopped at the second
/// (`ucf: return: Illegal number: registry.k8s.io`, seen by `cargo xtask vm`).
#[test]
fn every_registry_gets_its_hosts_file_though_ucf_reads_stdin() {
    let sh = mirrors_shell("/usr/bin/mawk");
    let r = sh.run(
        r#"
CERTS_D=$PWD/certs.d
work=$PWD
say() { echo "$*" >&2; }
# No ucf database here: nothing is known, nothing was generated before.
ucfq() { :; }
# As ucf does under debconf: its stdin is debconf's answers.
install_tracked() { cat >/dev/null; cp "$1" "$2"; KEPT=0; }
mirrors=$(mirrors_parse "$1") || exit 1
write_mirrors
"#,
        &["docker.io=https://a.example.org registry.k8s.io=http://10.0.0.5:5000,https://b.example.org quay.io=https://c.example.org"],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for (host, mirrors) in [("docker.io", 1), ("registry.k8s.io", 2), ("quay.io", 1)] {
        let path = sh.path(&format!("certs.d/{host}/hosts.toml"));
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let t = parse(&text, host);
        assert_eq!(t["host"].as_table().unwrap().len(), mirrors, "{host}");
    }
}

#[test]
fn maintainer_scripts_pass_shellcheck() {
    let dir = TempDir::new().unwrap();
    let shellcheck = Command::new("shellcheck").arg("--version").output();
    assert!(
        shellcheck.is_ok_and(|o| o.status.success()),
        "shellcheck is not installed; the maintainer scripts must pass it: apt-get install shellcheck"
    );
    for name in MAINTAINER_SCRIPTS {
        let text = render(name);
        assert!(text.starts_with("#!/bin/sh\n"), "{name}");
        assert!(!text.contains("{{"), "{name} has an unrendered placeholder");
        let path = dir.path().join(name);
        fs::write(&path, &text).unwrap();
        let r = Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "shellcheck -s sh {name}:\n{}",
            String::from_utf8_lossy(&r.stdout)
        );
        let r = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(
            r.status.success(),
            "sh -n {name}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}

#[test]
fn scripts_accept_every_argument_dpkg_passes_and_refuse_others() {
    // Only the arguments that touch nothing on this machine are run here; the system tests
    // install, upgrade and purge for real.
    let dir = TempDir::new().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("preinst", &["abort-upgrade"]),
        ("prerm", &["upgrade", "deconfigure", "failed-upgrade"]),
        (
            "postrm",
            &[
                "upgrade",
                "failed-upgrade",
                "abort-install",
                "abort-upgrade",
            ],
        ),
    ];
    for (name, args) in cases {
        let path = dir.path().join(name);
        fs::write(&path, render(name)).unwrap();
        for arg in *args {
            let r = Command::new("sh")
                .arg(&path)
                .args([*arg, "1.0-1"])
                .output()
                .unwrap();
            assert!(
                r.status.success(),
                "{name} {arg}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
        }
        let r = Command::new("sh").arg(&path).arg("bogus").output().unwrap();
        assert_eq!(r.status.code(), Some(1), "{name} bogus");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("unknown argument 'bogus'"),
            "{name}"
        );
    }
    // Every argument dpkg documents for each script has its own case arm.
    let documented: &[(&str, &[&str])] = &[
        ("preinst", &["install", "upgrade", "abort-upgrade"]),
        (
            "postinst",
            &[
                "configure",
                "abort-upgrade",
                "abort-remove",
                "abort-deconfigure",
                "triggered",
            ],
        ),
        (
            "prerm",
            &["remove", "upgrade", "deconfigure", "failed-upgrade"],
        ),
        (
            "postrm",
            &[
                "remove",
                "purge",
                "upgrade",
                "disappear",
                "failed-upgrade",
                "abort-install",
                "abort-upgrade",
            ],
        ),
        ("config", &["configure", "reconfigure"]),
    ];
    for (name, args) in documented {
        let text = render(name);
        let arms: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.ends_with(')') && !l.starts_with('#') && !l.contains('('))
            .flat_map(|l| l.trim_end_matches(')').split('|').map(str::trim))
            .collect();
        for arg in *args {
            assert!(
                arms.contains(arg),
                "{name} has no case arm for {arg}: {arms:?}"
            );
        }
    }
}

#[test]
fn debconf_defaults_and_dependencies_come_from_the_stack() {
    let templates = render("templates");
    assert!(templates.contains("Template: containerd-stack/sandbox_image\nType: string\nDefault: registry.example.org/k8s/pause:3.99\n"));
    assert!(templates
        .contains("Template: containerd-stack/systemd_cgroup\nType: boolean\nDefault: false\n"));
    let postinst = render("postinst");
    assert!(postinst.contains("CNI_BIN_DIR='/usr/lib/cni'"));
    let control = render("control");
    let depends = control
        .lines()
        .find(|l| l.starts_with("Depends: "))
        .expect("Depends");
    for dep in ["ucf", "debconf (>= 0.5) | debconf-2.0"] {
        assert!(depends.contains(dep), "{depends}");
    }
}
