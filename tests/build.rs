//! build-deb against a loopback HTTP mirror serving generated releases in upstream's exact
//! names and paths. Every assertion is about what a user (or dpkg) would see.

use std::path::Path;
use std::process::Command;

use containerd_stack::deb::compress::Compression;
use containerd_stack::deb::read::{read_deb, DebContents};
use containerd_stack::listener::{Quiet, Recorder};
use containerd_stack::stack::ComponentKind;
use containerd_stack::{build, BuildOptions, BuiltDeb, DebArch, Stack};
use tempfile::TempDir;
use testkit::{upstream, FakeRelease, Mirror};

pub(crate) const ALL: &[ComponentKind] = &ComponentKind::ALL;

/// Generated releases for some architectures, served on loopback, and a directory for
/// builds' output and caches.
pub(crate) struct Fixture {
    pub(crate) dir: TempDir,
    pub(crate) release: FakeRelease,
    pub(crate) mirror: Mirror,
}

impl Fixture {
    pub(crate) fn new(arches: &[DebArch]) -> Fixture {
        let dir = TempDir::new().unwrap();
        let release = FakeRelease::write(&dir.path().join("mirror"), arches);
        let mirror = Mirror::serve(dir.path().join("mirror"));
        Fixture {
            dir,
            release,
            mirror,
        }
    }

    pub(crate) fn stack(&self, kinds: &[ComponentKind]) -> Stack {
        Stack::parse(&self.release.stack_toml(kinds), Path::new("stack.toml")).unwrap()
    }

    pub(crate) fn opts(&self, arch: DebArch, tag: &str) -> BuildOptions {
        BuildOptions {
            threads: 2,
            ..BuildOptions::new(
                vec![arch],
                self.dir.path().join(format!("out-{tag}")),
                Some(self.mirror.url()),
                self.dir.path().join(format!("cache-{tag}")),
            )
        }
    }

    pub(crate) fn build(&self, kinds: &[ComponentKind], opts: &BuildOptions) -> BuiltDeb {
        let mut built = build(&self.stack(kinds), opts, &Quiet).unwrap();
        assert_eq!(built.len(), 1);
        built.remove(0)
    }
}

pub(crate) fn out_files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub(crate) fn text(deb: &DebContents, path: &str) -> String {
    let e = deb
        .data_entry(path)
        .unwrap_or_else(|| panic!("{path} missing"));
    String::from_utf8(e.content.clone().unwrap()).unwrap()
}

#[test]
fn package_has_the_layout_fields_and_checksums_dpkg_expects() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let built = f.build(ALL, &f.opts(DebArch::Amd64, "a"));
    assert_eq!(
        built.path.file_name().unwrap(),
        "containerd-stack_2.3.4-1_amd64.deb"
    );
    assert_eq!(built.size, std::fs::metadata(&built.path).unwrap().len());
    let deb = read_deb(&built.path).unwrap();

    let members: Vec<_> = deb.members.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(members, ["debian-binary", "control.tar.xz", "data.tar.xz"]);
    assert_eq!(deb.debian_binary, b"2.0\n");

    let c = deb.control_fields();
    assert_eq!(c["Package"], "containerd-stack");
    assert_eq!(c["Version"], "2.3.4-1");
    assert_eq!(c["Architecture"], "amd64");
    assert_eq!(
        c["Maintainer"],
        "containerd-stack maintainers <maintainers@example.org>"
    );
    assert_eq!(c["Section"], "admin");
    assert_eq!(c["Priority"], "optional");
    assert!(c.contains_key("Homepage"));
    let conflicts = "containerd, containerd.io, runc, kubernetes-cni, cri-tools";
    assert_eq!(c["Conflicts"], conflicts);
    assert_eq!(c["Replaces"], conflicts);
    assert_eq!(
        c["Provides"],
        "containerd (= 2.3.4), runc (= 1.4.3), kubernetes-cni (= 1.9.1), cri-tools (= 1.36.0)"
    );
    // The generated programs are static: no shared library to depend on, only what the
    // maintainer scripts use.
    assert!(!c["Depends"].contains("lib"), "{c:?}");
    for v in [
        "containerd 2.3.4",
        "runc 1.4.3",
        "CNI plugins 1.9.1",
        "crictl 1.36.0",
    ] {
        assert!(c["Description"].contains(v), "description lacks {v}");
    }
    let installed: u64 = c["Installed-Size"].parse().unwrap();
    assert!((20..200).contains(&installed), "{installed}");

    // md5sums cover every non-conffile and match the data.
    let (mode, md5sums) = &deb.control_files["md5sums"];
    assert_eq!(*mode, 0o644);
    let md5sums = String::from_utf8(md5sums.clone()).unwrap();
    let files: Vec<_> = deb.data.iter().filter(|e| e.kind.is_file()).collect();
    for e in &files {
        let rel = e.path.trim_start_matches("./");
        let line = format!("{}  {rel}", e.md5);
        assert_eq!(
            md5sums.lines().any(|l| l == line),
            !rel.starts_with("etc/"),
            "{line}"
        );
    }
    assert_eq!(
        md5sums.lines().count(),
        files
            .iter()
            .filter(|e| !e.path.starts_with("./etc/"))
            .count()
    );

    let conffiles = String::from_utf8(deb.control_files["conffiles"].1.clone()).unwrap();
    assert_eq!(
        conffiles,
        "/etc/cni/net.d/10-containerd-net.conflist\n/etc/crictl.yaml\n"
    );
    assert!(!deb
        .data
        .iter()
        .any(|e| e.path == "./etc/containerd/config.toml"));

    let programs = [
        "./usr/bin/containerd",
        "./usr/bin/containerd-shim-runc-v2",
        "./usr/bin/ctr",
        "./usr/bin/crictl",
        "./usr/sbin/runc",
        "./opt/cni/bin/bridge",
        "./opt/cni/bin/host-local",
        "./opt/cni/bin/loopback",
        "./opt/cni/bin/portmap",
    ];
    let others = [
        "./etc/crictl.yaml",
        "./etc/cni/net.d/10-containerd-net.conflist",
        "./usr/lib/systemd/system/containerd.service",
        "./usr/share/doc/containerd-stack/copyright",
        "./usr/share/doc/containerd-stack/changelog.Debian.gz",
        "./usr/share/doc/containerd-stack/sbom.spdx.json",
        "./usr/share/lintian/overrides/containerd-stack",
        "./usr/lib/modules-load.d/containerd-stack.conf",
        "./usr/lib/sysctl.d/99-containerd-stack.conf",
    ];
    for p in programs {
        let e = deb.data_entry(p).unwrap_or_else(|| panic!("{p} missing"));
        assert_eq!(e.mode, 0o755, "{p}");
    }
    for p in others {
        let e = deb.data_entry(p).unwrap_or_else(|| panic!("{p} missing"));
        assert_eq!(e.mode, 0o644, "{p}");
    }
    assert_eq!(
        files.len(),
        programs.len() + others.len(),
        "unexpected extra files"
    );
    let sysctl = deb
        .data_entry("./usr/lib/sysctl.d/99-containerd-stack.conf")
        .and_then(|e| e.content.clone())
        .expect("sysctl.d file content");
    let sysctl = String::from_utf8(sysctl).unwrap();
    for line in [
        "net.ipv4.ip_forward = 1",
        "net.bridge.bridge-nf-call-iptables = 1",
        "net.bridge.bridge-nf-call-ip6tables = 1",
    ] {
        assert!(
            sysctl.lines().any(|l| l == line),
            "{line} missing:\n{sysctl}"
        );
    }
    for e in &deb.data {
        assert_eq!((e.uid, e.gid), (0, 0), "{}", e.path);
        assert_eq!(e.mtime, upstream::ENTRY_MTIME, "{}", e.path);
        if e.kind.is_dir() {
            assert_eq!(e.mode, 0o755, "{}", e.path);
        }
    }
    // Merged /usr: /bin, /sbin and /lib* are links into /usr, which dpkg does not know.
    for e in &deb.data {
        let top = e
            .path
            .trim_start_matches("./")
            .split('/')
            .next()
            .unwrap_or("");
        assert!(
            !matches!(top, "bin" | "sbin") && !top.starts_with("lib"),
            "{} is in an aliased location",
            e.path
        );
    }
    // /opt belongs to no package: shipping it would make purge remove it.
    assert!(deb.data_entry("./opt/").is_none());
    assert!(deb.data_entry("./opt/cni/").is_some());
    let preinst = String::from_utf8(deb.control_files["preinst"].1.clone()).unwrap();
    assert!(preinst.contains("mkdir -p /opt"), "{preinst}");
    assert_eq!(deb.control_files["preinst"].0, 0o755);
    assert!(deb.data_entry("./usr/bin/containerd-stress").is_none());
    // Every directory first, in path order; then each component's files, in the component
    // table's order; then the rendered files.
    let paths: Vec<_> = deb.data.iter().map(|e| e.path.as_str()).collect();
    let dirs = deb.data.iter().take_while(|e| e.kind.is_dir()).count();
    assert!(
        deb.data[dirs..].iter().all(|e| e.kind.is_file()),
        "{paths:?}"
    );
    let mut sorted = paths[..dirs].to_vec();
    sorted.sort();
    assert_eq!(paths[..dirs], sorted);
    let (shipped, rendered) = paths[dirs..].split_at(programs.len());
    assert_eq!(
        shipped,
        [
            "./usr/bin/containerd",
            "./usr/bin/containerd-shim-runc-v2",
            "./usr/bin/ctr",
            "./usr/sbin/runc",
            "./opt/cni/bin/bridge",
            "./opt/cni/bin/host-local",
            "./opt/cni/bin/loopback",
            "./opt/cni/bin/portmap",
            "./usr/bin/crictl",
        ]
    );
    let mut others_sorted = others.to_vec();
    others_sorted.sort();
    assert_eq!(rendered, others_sorted);

    let unit = text(&deb, "./usr/lib/systemd/system/containerd.service");
    assert!(unit.contains("\nExecStart=/usr/bin/containerd\n"), "{unit}");
    for line in [
        "Type=notify",
        "Delegate=yes",
        "KillMode=process",
        "OOMScoreAdjust=-999",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    let crictl = text(&deb, "./etc/crictl.yaml");
    assert!(crictl.contains("runtime-endpoint: unix:///run/containerd/containerd.sock"));
    assert!(crictl.contains("image-endpoint: unix:///run/containerd/containerd.sock"));
    let conflist: serde_json::Value =
        serde_json::from_str(&text(&deb, "./etc/cni/net.d/10-containerd-net.conflist")).unwrap();
    let types: Vec<_> = conflist["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["bridge", "portmap"]);
    let copyright = text(&deb, "./usr/share/doc/containerd-stack/copyright");
    assert!(copyright
        .starts_with("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"));
    assert!(copyright.contains("License: Apache-2.0"));
    let gz = deb
        .data_entry("./usr/share/doc/containerd-stack/changelog.Debian.gz")
        .unwrap();
    let gz = gz.content.as_ref().unwrap();
    assert_eq!(&gz[4..8], &[0; 4], "gzip header carries a timestamp");
    let overrides = text(&deb, "./usr/share/lintian/overrides/containerd-stack");
    for line in overrides
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("containerd-stack: "), "{line}");
    }
}

#[test]
fn dpkg_deb_accepts_every_compression() {
    let f = Fixture::new(&[DebArch::Amd64]);
    for (i, c) in [Compression::Xz, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let mut opts = f.opts(DebArch::Amd64, &format!("c{i}"));
        opts.compression = c;
        opts.level = c.default_level().min(9);
        let deb = f.build(ALL, &opts).path;
        let info = Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .output()
            .unwrap();
        assert!(
            info.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&info.stderr)
        );
        assert!(String::from_utf8_lossy(&info.stdout).contains("Package: containerd-stack"));
        let contents = Command::new("dpkg-deb")
            .arg("--contents")
            .arg(&deb)
            .output()
            .unwrap();
        assert!(contents.status.success());
        assert!(String::from_utf8_lossy(&contents.stdout).contains("./usr/sbin/runc"));
        let x = f.dir.path().join(format!("x{i}"));
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&x)
            .status()
            .unwrap();
        assert!(status.success());
        let runc = std::fs::read(x.join("usr/sbin/runc")).unwrap();
        assert_eq!(
            runc,
            f.release.asset_bytes(ComponentKind::Runc, DebArch::Amd64)
        );
        let ext = c.extension();
        let deb = read_deb(&deb).unwrap();
        assert_eq!(deb.members[2].0, format!("data.tar.{ext}"));
    }
}

#[test]
fn two_builds_in_different_places_and_times_are_byte_identical() {
    let f = Fixture::new(&[DebArch::Arm64]);
    let a = f.build(ALL, &f.opts(DebArch::Arm64, "one"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = f.build(ALL, &f.opts(DebArch::Arm64, "two"));
    assert_ne!(a.path, b.path);
    assert_eq!(
        std::fs::read(&a.path).unwrap(),
        std::fs::read(&b.path).unwrap()
    );
    assert_eq!(a.sha256, b.sha256);
    // …and so are the SBOM, .buildinfo and .changes beside it.
    let beside = |deb: &BuiltDeb, ext: &str| {
        std::fs::read(deb.path.with_extension(ext))
            .unwrap_or_else(|e| panic!("{} beside {}: {e}", ext, deb.path.display()))
    };
    for ext in ["spdx.json", "buildinfo", "changes"] {
        assert_eq!(beside(&a, ext), beside(&b, ext), "{ext}");
    }

    // SOURCE_DATE_EPOCH sets the one mtime, and is reproducible too.
    let mut o = f.opts(DebArch::Arm64, "sde");
    o.source_date_epoch = Some(1_234_567_890);
    let c = f.build(ALL, &o);
    let deb = read_deb(&c.path).unwrap();
    assert!(deb.data.iter().all(|e| e.mtime == 1_234_567_890));
    assert!(deb.members.iter().all(|m| m.2 == 1_234_567_890));
    assert_ne!(c.sha256, a.sha256);
    let sbom: serde_json::Value = serde_json::from_slice(&beside(&c, "spdx.json")).unwrap();
    assert_eq!(sbom["creationInfo"]["created"], "2009-02-13T23:31:30Z");
}

#[test]
fn optional_components_left_out_ship_and_provide_nothing() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let built = f.build(
        &[ComponentKind::Containerd, ComponentKind::Runc],
        &f.opts(DebArch::Amd64, "min"),
    );
    let deb = read_deb(&built.path).unwrap();
    let c = deb.control_fields();
    assert_eq!(c["Provides"], "containerd (= 2.3.4), runc (= 1.4.3)");
    assert_eq!(c["Conflicts"], "containerd, containerd.io, runc");
    assert!(!deb.data.iter().any(|e| e.path.starts_with("./opt")
        || e.path.contains("crictl")
        || e.path.contains("cni")));
    assert!(!deb.control_files.contains_key("conffiles"));
    assert!(!String::from_utf8_lossy(&deb.control_files["preinst"].1).contains("mkdir"));
}

#[test]
fn kernel_prerequisites_turned_off_in_the_stack_ship_nothing_of_them() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let text = f
        .release
        .stack_toml(ALL)
        .replace("[settings]\n", "[settings]\nkernel_prerequisites = false\n");
    let stack = Stack::parse(&text, Path::new("stack.toml")).unwrap();
    assert!(!stack.settings.kernel_prerequisites);
    let built = build(&stack, &f.opts(DebArch::Amd64, "nokp"), &Quiet).unwrap();
    let deb = read_deb(&built[0].path).unwrap();
    assert!(!deb
        .data
        .iter()
        .any(|e| e.path.contains("modules-load.d") || e.path.contains("sysctl.d")));
    let text = |name: &str| String::from_utf8_lossy(&deb.control_files[name].1).into_owned();
    assert!(!text("templates").contains("kernel_prerequisites"));
    assert!(!text("config").contains("kernel_prerequisites"));
    assert!(!text("postinst").contains("modprobe"));
    // With them on (the default), the question is there, and the postinst loads modules.
    let on = f.build(ALL, &f.opts(DebArch::Amd64, "kp"));
    let deb = read_deb(&on.path).unwrap();
    assert!(String::from_utf8_lossy(&deb.control_files["templates"].1)
        .contains("Template: containerd-stack/kernel_prerequisites"));
    assert!(String::from_utf8_lossy(&deb.control_files["postinst"].1).contains("modprobe"));
}

#[test]
fn optional_component_without_a_pin_for_the_arch_is_left_out_with_a_warning() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let text = f.release.stack_toml(ALL).replace(
        &format!(
            "amd64 = \"{}\"\n",
            f.release.sha256[&(ComponentKind::Crictl, DebArch::Amd64)]
        ),
        "",
    );
    let stack = Stack::parse(&text, Path::new("stack.toml")).unwrap();
    let rec = Recorder::default();
    let built = build(&stack, &f.opts(DebArch::Amd64, "w"), &rec).unwrap();
    assert_eq!(
        rec.warnings(),
        ["components.crictl.sha256.amd64 is not pinned: crictl is left out of the amd64 package"]
    );
    let deb = read_deb(&built[0].path).unwrap();
    assert!(deb.data_entry("./usr/bin/crictl").is_none());
    assert!(!deb.control_fields()["Provides"].contains("cri-tools"));
    assert!(
        !f.mirror.requests().iter().any(|r| r.contains("crictl")),
        "an unpinned asset was fetched"
    );
}

#[test]
fn wrong_sha256_is_refused_and_leaves_nothing() {
    let f = Fixture::new(&[DebArch::Amd64]);
    // Upstream's file changed after it was pinned.
    let pinned = f.release.stack_toml(ALL);
    let mut release = f.release.clone();
    release.put(ComponentKind::Runc, DebArch::Amd64, b"\x7fELF tampered");
    let stack = Stack::parse(&pinned, Path::new("stack.toml")).unwrap();
    let opts = f.opts(DebArch::Amd64, "bad");
    let err = build(&stack, &opts, &Quiet).unwrap_err().to_string();
    let url = format!(
        "{}/opencontainers/runc/releases/download/v1.4.3/runc.amd64",
        f.mirror.url()
    );
    assert!(
        err.starts_with(&format!(
            "{url}: sha256 mismatch: expected {}",
            f.release.sha256[&(ComponentKind::Runc, DebArch::Amd64)]
        )),
        "{err}"
    );
    assert!(!err.contains('\n'));
    assert!(out_files(&opts.out_dir).is_empty());
    assert!(
        out_files(&opts.fetch.cache_dir.join("sha256")).len() < 4,
        "the bad download was cached"
    );
    assert!(
        out_files(&opts.fetch.cache_dir.join("tmp")).is_empty(),
        "partial download left behind"
    );
}

#[test]
fn one_failed_architecture_leaves_nothing_of_the_others() {
    let f = Fixture::new(&[DebArch::Amd64, DebArch::Arm64]);
    let mut release = f.release.clone();
    release.put(
        ComponentKind::Runc,
        DebArch::Arm64,
        &testkit::elf_program(DebArch::Amd64, "runc"),
    );
    let stack = Stack::parse(&release.stack_toml(ALL), Path::new("stack.toml")).unwrap();
    let mut opts = f.opts(DebArch::Amd64, "half");
    opts.arches = vec![DebArch::Amd64, DebArch::Arm64];
    let err = build(&stack, &opts, &Quiet).unwrap_err().to_string();
    assert!(
        err.contains("built for amd64, but the package is for arm64"),
        "{err}"
    );
    // amd64's package was written, but is never named: no package, SBOM, .buildinfo or
    // .changes of a build that failed.
    assert_eq!(out_files(&opts.out_dir), Vec::<String>::new());
}

#[test]
fn unpinned_arch_is_refused_before_any_download() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let opts = f.opts(DebArch::S390x, "s390x");
    let err = build(&f.stack(ALL), &opts, &Quiet).unwrap_err().to_string();
    assert!(
        err.starts_with("components.containerd.sha256.s390x: no sha256 is pinned for s390x"),
        "{err}"
    );
    assert!(f.mirror.requests().is_empty());
    assert!(out_files(&opts.out_dir).is_empty());
}

#[test]
fn archive_entry_escaping_with_dot_dot_is_refused() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let evil = upstream::tar_gz(&[
        (
            "bin/containerd",
            0o755,
            testkit::elf_program(DebArch::Amd64, "c"),
        ),
        ("bin/../../../evil", 0o755, b"pwned".to_vec()),
    ]);
    let mut release = f.release.clone();
    release.put(ComponentKind::Containerd, DebArch::Amd64, &evil);
    let stack = Stack::parse(&release.stack_toml(ALL), Path::new("stack.toml")).unwrap();
    let opts = f.opts(DebArch::Amd64, "evil");
    let err = build(&stack, &opts, &Quiet).unwrap_err().to_string();
    assert_eq!(
        err,
        "containerd-2.3.4-linux-amd64.tar.gz: entry bin/../../../evil: path is absolute or climbs out with '..'; refusing the archive"
    );
    assert!(out_files(&opts.out_dir).is_empty());
    assert!(!opts.fetch.cache_dir.join("evil").exists());
    assert!(!f.dir.path().join("evil").exists());
}

#[test]
fn offline_uses_the_cache_or_says_what_is_missing() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let mut opts = f.opts(DebArch::Amd64, "off");
    opts.fetch.offline = true;
    let err = build(&f.stack(ALL), &opts, &Quiet).unwrap_err().to_string();
    assert!(
        err.contains("/containerd-2.3.4-linux-amd64.tar.gz: not in the cache"),
        "{err}"
    );
    assert!(err.contains("the network is forbidden (offline)"), "{err}");
    assert!(
        f.mirror.requests().is_empty(),
        "offline touched the network"
    );
    assert!(out_files(&opts.out_dir).is_empty());

    // Once the cache is filled, offline builds the same package without the network.
    opts.fetch.offline = false;
    let online = f.build(ALL, &opts);
    let requests = f.mirror.requests().len();
    opts.fetch.offline = true;
    let offline = f.build(ALL, &opts);
    assert_eq!(f.mirror.requests().len(), requests);
    assert_eq!(online.sha256, offline.sha256);
}

#[test]
fn file_mirror_works_offline() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let mut opts = f.opts(DebArch::Amd64, "file");
    opts.fetch.mirror = Some(format!("file://{}", f.release.root.display()));
    opts.fetch.offline = true;
    f.build(ALL, &opts);
    assert!(f.mirror.requests().is_empty());
}

#[test]
fn redirects_are_followed_like_githubs() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let path = "/opencontainers/runc/releases/download/v1.4.3/runc.amd64";
    // GitHub answers release downloads with a redirect to another host.
    std::fs::create_dir_all(f.release.root.join("objects")).unwrap();
    std::fs::copy(
        f.release.root.join(&path[1..]),
        f.release.root.join("objects/runc-blob"),
    )
    .unwrap();
    f.mirror.redirect(
        path,
        &format!(
            "{}/objects/runc-blob",
            f.mirror.url().replace("127.0.0.1", "localhost")
        ),
    );
    f.build(ALL, &f.opts(DebArch::Amd64, "redir"));
    assert!(f
        .mirror
        .requests()
        .iter()
        .any(|r| r == "/objects/runc-blob"));
}

#[test]
fn missing_asset_names_the_url() {
    let f = Fixture::new(&[DebArch::Amd64]);
    std::fs::remove_file(f.release.path_of(ComponentKind::Crictl, DebArch::Amd64)).unwrap();
    let opts = f.opts(DebArch::Amd64, "404");
    let err = build(&f.stack(ALL), &opts, &Quiet).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{}/kubernetes-sigs/cri-tools/releases/download/v1.36.0/crictl-v1.36.0-linux-amd64.tar.gz: HTTP 404 Not Found", f.mirror.url())
    );
    assert!(out_files(&opts.out_dir).is_empty());
}

#[test]
fn program_for_another_architecture_is_refused_naming_it() {
    let f = Fixture::new(&[DebArch::Arm64]);
    let mut release = f.release.clone();
    release.put(
        ComponentKind::Runc,
        DebArch::Arm64,
        &testkit::elf_program(DebArch::Amd64, "runc"),
    );
    let stack = Stack::parse(&release.stack_toml(ALL), Path::new("stack.toml")).unwrap();
    let opts = f.opts(DebArch::Arm64, "mixed");
    let err = build(&stack, &opts, &Quiet).unwrap_err().to_string();
    assert_eq!(
        err,
        "usr/sbin/runc (arm64, from runc.arm64): built for amd64, but the package is for arm64"
    );
    assert!(out_files(&opts.out_dir).is_empty());
}

#[test]
fn dynamic_programs_become_depends() {
    // The host's own /bin/true is a real, small, dynamically linked program.
    let host = DebArch::host().expect("the tests run on an architecture upstream publishes");
    let me = std::fs::read("/bin/true").unwrap();
    let f = Fixture::new(&[host]);
    let mut release = f.release.clone();
    let p = |n: &str| testkit::elf_program(host, n);
    release.put(
        ComponentKind::Containerd,
        host,
        &upstream::tar_gz(&[
            ("bin/containerd", 0o755, me),
            ("bin/containerd-shim-runc-v2", 0o755, p("shim")),
            ("bin/ctr", 0o755, p("ctr")),
        ]),
    );
    let stack = Stack::parse(&release.stack_toml(ALL), Path::new("stack.toml")).unwrap();
    let built = build(&stack, &f.opts(host, "dyn"), &Quiet).unwrap();
    let depends = read_deb(&built[0].path).unwrap().control_fields()["Depends"].clone();
    assert!(depends.starts_with("libc6 (>= 2."), "{depends}");
    let overrides = read_deb(&built[0].path).unwrap();
    let overrides = text(&overrides, "./usr/share/lintian/overrides/containerd-stack");
    assert!(
        !overrides.contains("[usr/bin/containerd]"),
        "dynamic program marked static"
    );
    assert!(overrides.contains("[usr/bin/ctr]"));
}

#[test]
fn one_call_builds_every_requested_arch_and_plan_shows_elf_findings() {
    let f = Fixture::new(&[DebArch::Amd64, DebArch::Arm64, DebArch::S390x]);
    let mut opts = f.opts(DebArch::Amd64, "multi");
    opts.arches = f.stack(ALL).pinned_arches();
    assert_eq!(
        opts.arches,
        [DebArch::Amd64, DebArch::Arm64, DebArch::S390x]
    );

    let plan = containerd_stack::build::plan(&f.stack(ALL), &opts, &Quiet).unwrap();
    assert!(out_files(&opts.out_dir).is_empty(), "plan wrote packages");
    let json = serde_json::to_value(&plan).unwrap();
    for (i, arch) in ["amd64", "arm64", "s390x"].iter().enumerate() {
        assert_eq!(json[i]["arch"], *arch);
        let runc = &json[i]["tree"]["entries"]["usr/sbin/runc"];
        assert_eq!(runc["mode"], "0755");
        assert_eq!(runc["elf"]["linkage"], "static");
        assert_eq!(
            runc["source"]["staged"]["origin"],
            format!(
                "runc.{}",
                DebArch::ALL
                    .iter()
                    .find(|a| a.as_str() == *arch)
                    .unwrap()
                    .go_arch()
            )
        );
        assert_eq!(
            json[i]["tree"]["entries"]["etc/crictl.yaml"]["mode"],
            "0644"
        );
        // The data tar's parts, each with its blocks' lengths.
        let parts = json[i]["data"]["parts"].as_array().unwrap();
        let names: Vec<_> = parts.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "directories",
                "containerd",
                "runc",
                "cni-plugins",
                "crictl",
                "rendered"
            ]
        );
        for p in parts {
            let blocks: u64 = p["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap())
                .sum();
            assert_eq!(blocks, p["len"].as_u64().unwrap());
        }
    }

    let built = build(&f.stack(ALL), &opts, &Quiet).unwrap();
    let names: Vec<_> = built
        .iter()
        .map(|b| b.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "containerd-stack_2.3.4-1_amd64.deb",
            "containerd-stack_2.3.4-1_arm64.deb",
            "containerd-stack_2.3.4-1_s390x.deb"
        ]
    );
    for b in &built {
        let deb = read_deb(&b.path).unwrap();
        assert_eq!(deb.control_fields()["Architecture"], b.arch.as_str());
        let runc = deb.data_entry("./usr/sbin/runc").unwrap();
        let expected = f.release.asset_bytes(ComponentKind::Runc, b.arch);
        assert_eq!(runc.content.as_deref(), Some(&expected[..]));
    }
}

#[test]
fn rebuilds_reuse_what_is_proven_unchanged() {
    use containerd_stack::build::Reuse;
    let f = Fixture::new(&[DebArch::Amd64]);
    let opts = f.opts(DebArch::Amd64, "cache");
    let cold = f.build(ALL, &opts);
    assert_eq!(cold.reuse, Reuse::Nothing);
    let requests = f.mirror.requests().len();

    // Nothing changed: the package in --out is proven by its hash and kept, and nothing
    // beside it is written again.
    let mtimes = |dir: &Path| -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, e.metadata().unwrap().modified().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let before = mtimes(&opts.out_dir);
    assert_eq!(before.len(), 4, "{before:?}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = f.build(ALL, &opts);
    assert_eq!(again.reuse, Reuse::Package);
    assert_eq!(again.sha256, cold.sha256);
    assert_eq!(
        f.mirror.requests().len(),
        requests,
        "an unchanged rebuild downloaded"
    );
    assert_eq!(
        mtimes(&opts.out_dir),
        before,
        "an unchanged rebuild rewrote --out"
    );
    // The SBOM beside a kept package is written again when it went missing.
    let sbom = std::fs::read(&again.sbom).unwrap();
    std::fs::remove_file(&again.sbom).unwrap();
    let kept = f.build(ALL, &opts);
    assert_eq!(kept.reuse, Reuse::Package);
    assert_eq!(std::fs::read(&kept.sbom).unwrap(), sbom);

    // A change that only touches the control member reuses the compressed data member.
    let text = f
        .release
        .stack_toml(ALL)
        .replace("pause:3.10.2", "pause:3.10.3");
    let stack = Stack::parse(&text, Path::new("stack.toml")).unwrap();
    let control_only = build(&stack, &opts, &Quiet).unwrap().remove(0);
    assert_eq!(control_only.reuse, Reuse::DataMember);
    assert_ne!(control_only.sha256, cold.sha256);
    // ... and gives exactly the package a build without any cache gives.
    let mut fresh = f.opts(DebArch::Amd64, "fresh");
    fresh.out_dir = f.dir.path().join("out-fresh");
    let uncached = build(&stack, &fresh, &Quiet).unwrap().remove(0);
    assert_eq!(uncached.reuse, Reuse::Nothing);
    assert_eq!(uncached.sha256, control_only.sha256);
    let requests = f.mirror.requests().len();

    // A package tampered with in --out is not trusted: it is rebuilt.
    std::fs::write(&control_only.path, b"not a deb").unwrap();
    let repaired = build(&stack, &opts, &Quiet).unwrap().remove(0);
    assert_ne!(repaired.reuse, Reuse::Package);
    assert_eq!(repaired.sha256, control_only.sha256);

    // Corrupt cached frames are detected and compressed again, not shipped.
    let data_dir = opts.fetch.cache_dir.join("builds/frames-xz");
    for e in std::fs::read_dir(&data_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none() {
            std::fs::write(&p, b"garbage").unwrap();
        }
    }
    std::fs::remove_file(&control_only.path).unwrap();
    let rebuilt = build(&stack, &opts, &Quiet).unwrap().remove(0);
    assert_eq!(rebuilt.reuse, Reuse::Nothing);
    assert_eq!(rebuilt.sha256, control_only.sha256);
    assert_eq!(
        f.mirror.requests().len(),
        requests,
        "cached assets were downloaded again"
    );
}

/// A containerd release whose programs are `mib` MiB each: big enough that its part of the
/// data tar is cut into several blocks. The filler varies, so xz has work to do, and is the
/// same on every run.
fn big_containerd(arch: DebArch, mib: usize) -> Vec<u8> {
    upstream::containerd_tar_gz(|name| {
        let mut seed = name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
            h.rotate_left(5) ^ u64::from(b)
        });
        let mut bytes = testkit::elf_program(arch, name);
        for _ in 0..mib << 14 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Half the bytes of each word random: about 60% with xz, like a program.
            bytes.extend_from_slice(&(seed & 0x00ff_00ff_00ff_00ff).to_le_bytes()[..]);
            bytes.extend_from_slice(&[b'.'; 56]);
        }
        bytes
    })
}

fn part_len(plan: &containerd_stack::build::PreparedPackage, name: &str) -> u64 {
    plan.data
        .parts
        .iter()
        .find(|p| p.kind.name() == name)
        .unwrap_or_else(|| panic!("no part {name}"))
        .len
}

/// Issue #13: a template edit that lands in data.tar, then a runc bump, compress only the
/// blocks of the parts they change, and give byte for byte the package a build with an empty
/// cache gives for the same inputs.
#[test]
fn a_rebuild_compresses_only_the_changed_parts_and_equals_a_cold_build() {
    use containerd_stack::build::Reuse;
    use containerd_stack::listener::{Event, Stage};
    let f = Fixture::new(&[DebArch::Amd64]);
    let mut release = f.release.clone();
    release.put(
        ComponentKind::Containerd,
        DebArch::Amd64,
        &big_containerd(DebArch::Amd64, 2),
    );
    let opts = |tag: &str| BuildOptions {
        level: 1,
        ..f.opts(DebArch::Amd64, tag)
    };
    let build_with = |stack: &Stack, o: &BuildOptions| {
        let rec = Recorder::default();
        let built = build(stack, o, &rec).unwrap().remove(0);
        let plan = containerd_stack::build::plan(stack, o, &Quiet)
            .unwrap()
            .remove(0);
        (built, plan, rec)
    };
    let stack = Stack::parse(&release.stack_toml(ALL), Path::new("stack.toml")).unwrap();
    let warm = opts("warm");
    let (cold, plan, _) = build_with(&stack, &warm);
    assert_eq!(cold.reuse, Reuse::Nothing);
    assert_eq!(cold.compressed, plan.data.len());
    let containerd = plan
        .data
        .parts
        .iter()
        .find(|p| p.kind.name() == "containerd")
        .unwrap();
    assert_eq!(containerd.blocks.len(), 4, "{:?}", containerd.blocks);

    // Edit the unit and the CNI conflist through a templates directory.
    let templates = f.dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for name in ["containerd.service", "10-containerd-net.conflist"] {
        let builtin = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("debian-templates/{name}.hbs")),
        )
        .unwrap();
        let edited = match name {
            "containerd.service" => builtin.replace("RestartSec=5", "RestartSec=7"),
            _ => builtin.replace("10.88.0.0/16", "10.77.0.0/16"),
        };
        assert_ne!(edited, builtin, "{name}: the edit changed nothing");
        std::fs::write(templates.join(format!("{name}.hbs")), edited).unwrap();
    }
    let mut edited = stack.clone();
    edited.package.templates = Some(templates.clone());
    let (incremental, plan, rec) = build_with(&edited, &warm);
    assert_eq!(incremental.reuse, Reuse::Blocks);
    assert_eq!(incremental.compressed, part_len(&plan, "rendered"));
    let deb = read_deb(&incremental.path).unwrap();
    assert!(text(&deb, "./usr/lib/systemd/system/containerd.service").contains("RestartSec=7"));
    assert!(text(&deb, "./etc/cni/net.d/10-containerd-net.conflist").contains("10.77.0.0/16"));
    let events = rec.0.lock().unwrap();
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::Began {
                stage: Stage::Unpack,
                ..
            }
        )),
        "a template edit staged the assets again"
    );
    // Progress counts bytes of the tar: the cached blocks at once, then what is compressed,
    // never backwards, ending at the whole tar.
    let progress: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress {
                stage: Stage::Compress,
                done,
                total,
                ..
            } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    let total = plan.data.len();
    assert_eq!(
        progress.first(),
        Some(&(total - incremental.compressed, total))
    );
    assert_eq!(progress.last(), Some(&(total, total)));
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "{progress:?}"
    );
    drop(events);
    let (fresh, _, _) = build_with(&edited, &opts("edit-cold"));
    assert_eq!(fresh.reuse, Reuse::Nothing);
    assert_eq!(
        fresh.sha256, incremental.sha256,
        "a warm rebuild differs from a cold build"
    );

    // runc's next release: a new binary and a new pin.
    let mut bumped = release.clone();
    bumped
        .versions
        .insert(ComponentKind::Runc, "1.4.4".to_owned());
    bumped.put(
        ComponentKind::Runc,
        DebArch::Amd64,
        &testkit::elf_program(DebArch::Amd64, "runc 1.4.4"),
    );
    let mut runc_bump = Stack::parse(&bumped.stack_toml(ALL), Path::new("stack.toml")).unwrap();
    runc_bump.package.templates = Some(templates);
    let (incremental, plan, _) = build_with(&runc_bump, &warm);
    assert_eq!(incremental.reuse, Reuse::Blocks);
    assert!(
        incremental.compressed >= part_len(&plan, "runc")
            && incremental.compressed <= part_len(&plan, "runc") + part_len(&plan, "rendered"),
        "{} bytes compressed",
        incremental.compressed
    );
    let runc = read_deb(&incremental.path).unwrap();
    let runc = runc.data_entry("./usr/sbin/runc").unwrap();
    assert_eq!(
        runc.content.as_deref(),
        Some(&testkit::elf_program(DebArch::Amd64, "runc 1.4.4")[..])
    );
    let (fresh, _, _) = build_with(&runc_bump, &opts("bump-cold"));
    assert_eq!(
        fresh.sha256, incremental.sha256,
        "a warm rebuild differs from a cold build"
    );

    // Back to the first inputs: every block is still in the cache.
    let (again, _, _) = build_with(&stack, &warm);
    assert_eq!(again.reuse, Reuse::DataMember);
    assert_eq!(again.sha256, cold.sha256);
}

#[test]
fn parts_cut_into_blocks_unpack_with_dpkg_in_every_compression() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let mut release = f.release.clone();
    let containerd = big_containerd(DebArch::Amd64, 2);
    release.put(ComponentKind::Containerd, DebArch::Amd64, &containerd);
    let stack = Stack::parse(&release.stack_toml(ALL), Path::new("stack.toml")).unwrap();
    for c in [Compression::Xz, Compression::Gzip, Compression::Zstd] {
        let mut opts = f.opts(DebArch::Amd64, c.extension());
        opts.compression = c;
        opts.level = 1;
        let deb = build(&stack, &opts, &Quiet).unwrap().remove(0).path;
        let x = f.dir.path().join(format!("x-{}", c.extension()));
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&x)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ctr = std::fs::read(x.join("usr/bin/ctr")).unwrap();
        assert_eq!(
            ctr.len(),
            testkit::elf_program(DebArch::Amd64, "ctr").len() + (2 << 20)
        );
        assert_eq!(
            std::fs::read(x.join("usr/sbin/runc")).unwrap(),
            release.asset_bytes(ComponentKind::Runc, DebArch::Amd64)
        );
    }
}
