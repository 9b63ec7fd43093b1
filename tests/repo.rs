//! `repo publish` against real packages built from generated releases, judged by the tools
//! a user's machine judges it with: gpgv for the signatures, and apt-get itself — run in a
//! sandbox (its own state, cache, sources and keys under a temp dir; the host's apt
//! configuration is not read) against the repository served over loopback HTTP.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use containerd_stack::deb::compress::Compression;
use containerd_stack::listener::{Event, Quiet, Recorder};
use containerd_stack::repo::release::{cleartext, Release};
use containerd_stack::repo::{self, Plan, PublishOptions, Step};
use containerd_stack::sign::Signer;
use containerd_stack::stack::ComponentKind;
use containerd_stack::{build, BuildOptions, DebArch, Stack};
use sha2::{Digest, Sha256, Sha512};
use tempfile::TempDir;
use testkit::{openpgp, FakeRelease, Mirror};

use crate::common::now;

const POOL: &str = "pool/main/c/containerd-stack";

/// Packages built once for every test: revisions 1 to 5 for amd64, revision 1 for arm64,
/// and revision 1 for amd64 built again at another time (same version, other bytes).
struct Debs {
    rev: Vec<PathBuf>,
    rev1_arm64: PathBuf,
    rev1_rebuilt: PathBuf,
}

fn debs() -> &'static Debs {
    static DEBS: OnceLock<Debs> = OnceLock::new();
    DEBS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("repo-debs");
        let _ = fs::remove_dir_all(&dir);
        let release = FakeRelease::write(&dir.join("mirror"), &[DebArch::Amd64, DebArch::Arm64]);
        let mirror = Mirror::serve(dir.join("mirror"));
        let build_one = |revision: u32, arch: DebArch, epoch: u64| -> PathBuf {
            let text = release
                .stack_toml(&ComponentKind::ALL)
                .replace("revision = \"1\"", &format!("revision = \"{revision}\""));
            let stack = Stack::parse(&text, Path::new("stack.toml")).unwrap();
            let tag = format!("{revision}-{arch}-{epoch}");
            let opts = BuildOptions {
                compression: Compression::Gzip,
                source_date_epoch: Some(epoch),
                threads: 1,
                ..BuildOptions::new(
                    vec![arch],
                    dir.join(format!("out-{tag}")),
                    Some(mirror.url()),
                    dir.join(format!("cache-{tag}")),
                )
            };
            let mut built = build(&stack, &opts, &Quiet).unwrap();
            built.remove(0).path
        };
        Debs {
            rev: (1..=5)
                .map(|r| build_one(r, DebArch::Amd64, 1_700_000_000))
                .collect(),
            rev1_arm64: build_one(1, DebArch::Arm64, 1_700_000_000),
            rev1_rebuilt: build_one(1, DebArch::Amd64, 1_700_000_001),
        }
    })
}

/// A signing key, with its public half as gpgv and apt read it.
struct Key {
    signer: Signer,
    /// Binary keyring.
    keyring: PathBuf,
    /// ASCII-armoured public key.
    armored: PathBuf,
    _dir: TempDir,
}

fn key(name: &str) -> Key {
    let dir = TempDir::new().unwrap();
    let (k, signer) = openpgp::signer(&format!("{name} <{name}@example.org>"), now() - 3600);
    let keyring = dir.path().join(format!("{name}.gpg"));
    let armored = dir.path().join(format!("{name}.asc"));
    fs::write(&keyring, &k.public_binary).unwrap();
    fs::write(&armored, &k.public_armored).unwrap();
    Key {
        signer,
        keyring,
        armored,
        _dir: dir,
    }
}

fn opts() -> PublishOptions {
    PublishOptions::new(now())
}

fn publish(
    repo: &Path,
    debs: &[&PathBuf],
    keys: &[&Key],
    opts: &PublishOptions,
) -> containerd_stack::Result<Plan> {
    let debs: Vec<PathBuf> = debs.iter().map(|p| (*p).clone()).collect();
    let signers: Vec<&Signer> = keys.iter().map(|k| &k.signer).collect();
    repo::publish(repo, &debs, &signers, opts, &Quiet)
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn live_release(repo: &Path) -> Release {
    Release::parse(&cleartext(&read(repo.join("dists/stable/InRelease"))).unwrap()).unwrap()
}

/// Every file under `dir` with its content, for "nothing changed" assertions.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Fails — never skips — when a tool the tests judge with is missing.
fn tool(name: &str, package: &str) {
    match Command::new(name).arg("--version").output() {
        Ok(_) => {}
        Err(e) => panic!(
            "{name}: {e}: install the Debian package {package} (`cargo xtask ci` installs it)"
        ),
    }
}

fn gpgv(keyring: &Path, files: &[&Path]) -> Output {
    tool("gpgv", "gpgv");
    let home = TempDir::new().unwrap();
    Command::new("gpgv")
        .arg("--homedir")
        .arg(home.path())
        .arg("--keyring")
        .arg(keyring)
        .args(files)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// apt-get and apt-cache with their own state, cache, sources and keys under a temp dir.
struct Apt {
    dir: TempDir,
}

impl Apt {
    /// A client of `url` (suite stable, component main) trusting `signed_by` only.
    fn new(url: &str, signed_by: &Path) -> Apt {
        tool("apt-get", "apt");
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        for sub in [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/trusted.gpg.d",
            "etc/preferences.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        fs::write(d.join("status"), "").unwrap();
        // APT_CONFIG is read before anything else, so pointing Dir::Etc here keeps the
        // host's apt.conf.d (and its hooks) out.
        let conf = format!(
            r#"Dir::Etc "{d}/etc/";
Dir::Etc::main "/dev/null";
Dir::Etc::parts "apt.conf.d";
Dir::Etc::sourcelist "sources.list";
Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::trusted "trusted.gpg";
Dir::Etc::trustedparts "trusted.gpg.d";
Dir::Etc::preferences "preferences";
Dir::Etc::preferencesparts "preferences.d";
Dir::State "{d}/state/";
Dir::State::status "{d}/status";
Dir::Cache "{d}/cache/";
Dir::Log "{d}/log/";
Debug::NoLocking "true";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::http::Pipeline-Depth "0";
Acquire::http::Proxy "DIRECT";
APT::Architectures {{ "amd64"; "arm64"; }};
"#,
            d = d.display()
        );
        fs::write(d.join("apt.conf"), conf).unwrap();
        let apt = Apt { dir };
        apt.set_source(url, signed_by);
        apt
    }

    fn set_source(&self, url: &str, signed_by: &Path) {
        fs::write(
            self.dir.path().join("etc/sources.list.d/test.sources"),
            format!(
                "Types: deb\nURIs: {url}\nSuites: stable\nComponents: main\nSigned-By: {}\n",
                signed_by.display()
            ),
        )
        .unwrap();
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("APT_CONFIG", self.dir.path().join("apt.conf"))
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env("LC_ALL", "C")
            .output()
            .unwrap()
    }

    fn update(&self) -> Output {
        self.run("apt-get", &["update"])
    }

    /// `(version, arch)` of every containerd-stack apt knows.
    fn versions(&self) -> BTreeSet<(String, String)> {
        // Multi-arch: the foreign architecture's package is `name:arch` to apt.
        let o = self.run(
            "apt-cache",
            &["madison", "containerd-stack", "containerd-stack:arm64"],
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').map(str::trim).collect();
                let arch = f.get(2)?.split_whitespace().nth(2)?;
                Some((f[1].to_owned(), arch.to_owned()))
            })
            .collect()
    }
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(v, a)| (v.to_string(), a.to_string()))
        .collect()
}

/// What apt sees, without apt: the repository is absent, unsigned, or signed and complete —
/// every index its InRelease lists is found the way apt fetches it (by-hash/SHA512 first,
/// the plain name when that is missing) with the size and hashes listed.
#[derive(Debug, PartialEq)]
enum Seen {
    Absent,
    Unsigned,
    Valid(Release),
}

fn seen_like_apt(repo: &Path, keyring: &[u8]) -> Result<Seen, String> {
    let suite = repo.join("dists/stable");
    let keyring =
        containerd_stack::sign::Keyring::parse(keyring, "keyring").map_err(|e| e.to_string())?;
    let text = match fs::read(suite.join("InRelease")) {
        Ok(signed) => containerd_stack::lock::verify_clearsigned(&signed, &keyring, "InRelease")
            .map_err(|e| e.to_string())?,
        Err(_) => match (
            fs::read(suite.join("Release")),
            fs::read(suite.join("Release.gpg")),
        ) {
            (Err(_), _) => return Ok(Seen::Absent),
            (Ok(_), Err(_)) => return Ok(Seen::Unsigned),
            (Ok(r), Ok(sig)) => {
                containerd_stack::sign::verify_detached(&sig, &r[..], &keyring, "Release.gpg")
                    .map_err(|e| e.to_string())?;
                String::from_utf8(r).unwrap()
            }
        },
    };
    let release = Release::parse(&text)?;
    for f in &release.files {
        let sha512 = f.sha512.as_ref().ok_or("no SHA512")?;
        let dir = Path::new(&f.path).parent().unwrap();
        let by_hash = suite.join(dir).join("by-hash/SHA512").join(sha512);
        let bytes = fs::read(&by_hash)
            .or_else(|_| fs::read(suite.join(&f.path)))
            .map_err(|_| format!("{}: missing", f.path))?;
        if bytes.len() as u64 != f.size
            || hex::encode(Sha512::digest(&bytes)) != *sha512
            || hex::encode(Sha256::digest(&bytes)) != f.sha256
        {
            return Err(format!("{}: Hash Sum mismatch", f.path));
        }
    }
    Ok(Seen::Valid(release))
}

#[test]
fn published_repo_verifies_with_gpgv_and_apt_reads_it() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mirror = Mirror::serve(&repo);
    let mut o = opts();
    o.url = Some(format!("{}/", mirror.url()));
    o.valid_for_days = Some(7);
    let plan = publish(&repo, &[&d.rev[0], &d.rev1_arm64], &[&k], &o).unwrap();
    assert_eq!(
        plan.added,
        [
            format!("{POOL}/containerd-stack_2.3.4-1_amd64.deb"),
            format!("{POOL}/containerd-stack_2.3.4-1_arm64.deb")
        ]
    );

    let inrelease = repo.join("dists/stable/InRelease");
    let out = gpgv(&k.keyring, &[&inrelease]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Good signature from \"repo <repo@example.org>\""));
    let out = gpgv(
        &k.keyring,
        &[
            &repo.join("dists/stable/Release.gpg"),
            &repo.join("dists/stable/Release"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // The repository's own keyring is the one to give clients.
    let out = gpgv(&repo.join("containerd-stack.gpg"), &[&inrelease]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(read(&inrelease).starts_with("-----BEGIN PGP SIGNED MESSAGE-----\n"));
    assert!(read(&inrelease).ends_with("-----END PGP SIGNATURE-----\n"));

    let release = read(repo.join("dists/stable/Release"));
    for line in [
        "Origin: containerd-stack",
        "Label: containerd-stack",
        "Suite: stable",
        "Codename: stable",
        "Architectures: amd64 arm64",
        "Components: main",
        "Acquire-By-Hash: yes",
        "SHA256:",
        "SHA512:",
    ] {
        assert!(
            release.lines().any(|l| l == line),
            "Release lacks {line}:\n{release}"
        );
    }
    let r = Release::parse(&release).unwrap();
    assert_eq!(r.valid_until, Some(r.date + 7 * 86_400));
    let listed: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        listed,
        [
            "main/binary-amd64/Packages",
            "main/binary-amd64/Packages.gz",
            "main/binary-amd64/Packages.xz",
            "main/binary-arm64/Packages",
            "main/binary-arm64/Packages.gz",
            "main/binary-arm64/Packages.xz"
        ]
    );
    for f in &r.files {
        let bytes = fs::read(repo.join("dists/stable").join(&f.path)).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}", f.path);
        let dir = Path::new(&f.path).parent().unwrap();
        for (algo, hash) in [
            ("SHA256", &f.sha256),
            ("SHA512", f.sha512.as_ref().unwrap()),
        ] {
            let copy = repo
                .join("dists/stable")
                .join(dir)
                .join("by-hash")
                .join(algo)
                .join(hash);
            assert_eq!(fs::read(&copy).unwrap(), bytes, "{}", copy.display());
        }
    }

    // The stanza is the control file plus where the package is and its hashes.
    let packages = read(repo.join("dists/stable/main/binary-amd64/Packages"));
    let deb = containerd_stack::deb::read::read_deb(&d.rev[0]).unwrap();
    for (field, value) in deb.control_fields() {
        let first = value.lines().next().unwrap_or("");
        assert!(
            packages.contains(&format!("{field}: {first}")),
            "{field} missing:\n{packages}"
        );
    }
    let bytes = fs::read(&d.rev[0]).unwrap();
    let pool_file = format!("{POOL}/containerd-stack_2.3.4-1_amd64.deb");
    assert!(packages.starts_with("Package: containerd-stack\n"));
    for line in [
        format!("Filename: {pool_file}"),
        format!("Size: {}", bytes.len()),
        format!("MD5sum: {}", hex::encode(md5::Md5::digest(&bytes))),
        format!("SHA256: {}", hex::encode(Sha256::digest(&bytes))),
    ] {
        assert!(
            packages.lines().any(|l| l == line),
            "{line} missing:\n{packages}"
        );
    }
    // As in Debian's archive: no SHA512 per package (apt checks the SHA256).
    assert!(!packages.contains("\nSHA512: "), "{packages}");
    assert_eq!(fs::read(repo.join(&pool_file)).unwrap(), bytes);

    // The client files, and apt with exactly that source (only the key's path differs).
    let sources = read(repo.join("containerd-stack.sources"));
    assert_eq!(
        sources,
        format!(
            "Types: deb\nURIs: {}/\nSuites: stable\nComponents: main\nSigned-By: /etc/apt/keyrings/containerd-stack.gpg\n",
            mirror.url()
        )
    );
    assert_eq!(
        plan.client_commands,
        [
            format!("sudo curl -fsSLo /etc/apt/keyrings/containerd-stack.gpg {}/containerd-stack.gpg", mirror.url()),
            format!("sudo curl -fsSLo /etc/apt/sources.list.d/containerd-stack.sources {}/containerd-stack.sources", mirror.url()),
        ]
    );
    let keyring = fs::read(repo.join("containerd-stack.gpg")).unwrap();
    assert!(
        matches!(keyring[0], 0x98 | 0x99 | 0xC6),
        "{:#x}",
        keyring[0]
    );
    assert!(
        read(repo.join("containerd-stack.asc")).starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    );

    let apt = Apt::new(
        &format!("{}/", mirror.url()),
        &repo.join("containerd-stack.gpg"),
    );
    fs::write(
        apt.dir.path().join("etc/sources.list.d/test.sources"),
        sources.replace(
            "/etc/apt/keyrings/containerd-stack.gpg",
            &repo.join("containerd-stack.gpg").display().to_string(),
        ),
    )
    .unwrap();
    let out = apt.update();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("W:"), "{}", text(&out));
    assert_eq!(
        apt.versions(),
        set(&[("2.3.4-1", "amd64"), ("2.3.4-1", "arm64")])
    );
    // apt fetched the indexes by hash, the strongest one listed.
    let requests = mirror.requests();
    assert!(
        requests
            .iter()
            .any(|p| p.contains("/binary-amd64/by-hash/SHA512/")),
        "{requests:?}"
    );
    // The armoured key works as Signed-By too.
    let apt = Apt::new(
        &format!("{}/", mirror.url()),
        &repo.join("containerd-stack.asc"),
    );
    let out = apt.update();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(apt.versions().len(), 2);
}

#[test]
fn a_second_publish_adds_to_the_first_and_keeps_what_clients_mid_update_need() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mirror = Mirror::serve(&repo);
    publish(&repo, &[&d.rev[0], &d.rev1_arm64], &[&k], &opts()).unwrap();
    let apt = Apt::new(&format!("{}/", mirror.url()), &k.keyring);
    assert!(apt.update().status.success());
    let first = live_release(&repo);

    let plan = publish(&repo, &[&d.rev[1]], &[&k], &opts()).unwrap();
    assert_eq!(
        plan.added,
        [format!("{POOL}/containerd-stack_2.3.4-2_amd64.deb")]
    );
    let second = live_release(&repo);
    assert!(
        second.date > first.date,
        "{} then {}",
        first.date,
        second.date
    );
    // arm64 did not change: same index, same hashes, nothing rewritten.
    let arm64 = |r: &Release| {
        r.files
            .iter()
            .filter(|f| f.path.contains("arm64"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(arm64(&first), arm64(&second));
    assert!(
        plan.steps.iter().all(|s| !s.path().contains("arm64")),
        "{:?}",
        plan.steps
    );

    let out = apt.update();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        apt.versions(),
        set(&[
            ("2.3.4-1", "amd64"),
            ("2.3.4-2", "amd64"),
            ("2.3.4-1", "arm64")
        ])
    );
    // A client that read the first InRelease just before the publish still finds every
    // index it names, by hash.
    for f in &first.files {
        let dir = Path::new(&f.path).parent().unwrap();
        let copy = repo
            .join("dists/stable")
            .join(dir)
            .join("by-hash/SHA512")
            .join(f.sha512.as_ref().unwrap());
        let bytes = fs::read(&copy).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}", f.path);
    }
    // And its Packages still names a pool file that is there.
    assert!(repo
        .join(format!("{POOL}/containerd-stack_2.3.4-1_amd64.deb"))
        .exists());
}

#[test]
fn date_always_increases_and_never_runs_ahead_of_the_clock() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let t = now();
    let mut o = PublishOptions::new(t);
    publish(&repo, &[&d.rev[0]], &[&k], &o).unwrap();
    assert_eq!(live_release(&repo).date, t);
    // Same second again, then a clock a little behind: Date still moves forward, and the
    // publish waits until the clock has reached it.
    publish(&repo, &[&d.rev[1]], &[&k], &o).unwrap();
    assert_eq!(live_release(&repo).date, t + 1);
    assert!(now() > t, "published a Date ahead of the clock");
    o.now = t - 3;
    publish(&repo, &[], &[&k], &o).unwrap();
    assert_eq!(live_release(&repo).date, t + 2);
    assert!(now() >= t + 2, "published a Date ahead of the clock");
    let r = Release::parse(&read(repo.join("dists/stable/Release"))).unwrap();
    assert_eq!(r.date, t + 2, "Release and InRelease carry the same Date");
    // A clock far behind the last Date: no Date would satisfy both apt rules.
    let before = snapshot(&repo);
    o.now = t - 100;
    let e = publish(&repo, &[], &[&k], &o).unwrap_err().to_string();
    let expected = format!(
        "{}: is dated {}, 102 s after this machine's clock",
        repo.join("dists/stable/InRelease").display(),
        containerd_stack::render::rfc2822(t + 2)
    );
    assert!(e.starts_with(&expected), "{e}");
    assert!(e.contains("clients would refuse as not valid yet"), "{e}");
    assert_eq!(snapshot(&repo), before);
}

#[test]
fn keep_1_leaves_only_the_newest_version_and_deletes_the_rest_from_the_pool() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mirror = Mirror::serve(&repo);
    publish(
        &repo,
        &[&d.rev[0], &d.rev[1], &d.rev1_arm64],
        &[&k],
        &opts(),
    )
    .unwrap();
    let mut o = opts();
    o.keep = Some(1);
    let plan = publish(&repo, &[&d.rev[2]], &[&k], &o).unwrap();
    assert_eq!(
        plan.dropped,
        [
            "containerd-stack 2.3.4-1 (amd64)",
            "containerd-stack 2.3.4-2 (amd64)"
        ]
    );
    let packages = read(repo.join("dists/stable/main/binary-amd64/Packages"));
    let versions: Vec<&str> = packages
        .lines()
        .filter_map(|l| l.strip_prefix("Version: "))
        .collect();
    assert_eq!(versions, ["2.3.4-3"]);
    let mut pool: Vec<String> = fs::read_dir(repo.join(POOL))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pool.sort();
    assert_eq!(
        pool,
        [
            "containerd-stack_2.3.4-1_arm64.deb",
            "containerd-stack_2.3.4-3_amd64.deb"
        ]
    );
    // The deletions come after the new InRelease.
    let inrelease = plan
        .steps
        .iter()
        .position(|s| s.path() == "dists/stable/InRelease")
        .unwrap();
    for (i, s) in plan.steps.iter().enumerate() {
        if matches!(s, Step::Remove { .. }) {
            assert!(i > inrelease, "{s} before InRelease");
        }
    }
    let apt = Apt::new(&format!("{}/", mirror.url()), &k.keyring);
    let out = apt.update();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        apt.versions(),
        set(&[("2.3.4-3", "amd64"), ("2.3.4-1", "arm64")])
    );
}

#[test]
fn the_same_version_with_other_bytes_is_refused_naming_the_pool_file() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    publish(&repo, &[&d.rev[0]], &[&k], &opts()).unwrap();
    let before = snapshot(&repo);
    let e = publish(&repo, &[&d.rev1_rebuilt], &[&k], &opts())
        .unwrap_err()
        .to_string();
    let expected = format!(
        "{}: containerd-stack 2.3.4-1 (amd64) was published in dists/stable with sha256 ",
        repo.join(POOL)
            .join("containerd-stack_2.3.4-1_amd64.deb")
            .display()
    );
    assert!(e.starts_with(&expected), "{e}");
    assert!(e.contains(&d.rev1_rebuilt.display().to_string()), "{e}");
    assert!(
        e.ends_with("raise the package revision and build again"),
        "{e}"
    );
    assert!(!e.contains('\n'));
    assert_eq!(
        snapshot(&repo),
        before,
        "a refused publish changed the repository"
    );

    // The same bytes again are fine, and change no index.
    let plan = publish(&repo, &[&d.rev[0]], &[&k], &opts()).unwrap();
    assert_eq!(
        plan.already,
        [format!("{POOL}/containerd-stack_2.3.4-1_amd64.deb")]
    );
    assert!(plan.added.is_empty());

    // Dropped by --keep, the version is still remembered: caches may hold it.
    let mut o = opts();
    o.keep = Some(1);
    publish(&repo, &[&d.rev[1]], &[&k], &o).unwrap();
    assert!(!repo
        .join(POOL)
        .join("containerd-stack_2.3.4-1_amd64.deb")
        .exists());
    let e = publish(&repo, &[&d.rev1_rebuilt], &[&k], &opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(amd64) was published earlier with sha256"),
        "{e}"
    );
}

#[test]
fn apt_refuses_a_tampered_packages_file() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mirror = Mirror::serve(&repo);
    publish(&repo, &[&d.rev[0]], &[&k], &opts()).unwrap();
    // Every copy apt could fetch, plain and by-hash, compressed or not, now says 2.3.4-9.
    let index = repo.join("dists/stable/main/binary-amd64");
    let tampered = read(index.join("Packages")).replace("Version: 2.3.4-1", "Version: 2.3.4-9");
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, tampered.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        std::io::Write::write_all(&mut e, tampered.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let r = live_release(&repo);
    for f in &r.files {
        let bytes = match f.path.rsplit('.').next() {
            Some("gz") => gz.clone(),
            Some("xz") => xz.clone(),
            _ => tampered.clone().into_bytes(),
        };
        fs::write(repo.join("dists/stable").join(&f.path), &bytes).unwrap();
        for (algo, h) in [
            ("SHA256", &f.sha256),
            ("SHA512", f.sha512.as_ref().unwrap()),
        ] {
            fs::write(index.join("by-hash").join(algo).join(h), &bytes).unwrap();
        }
    }
    let apt = Apt::new(&format!("{}/", mirror.url()), &k.keyring);
    let out = apt.update();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("Hash Sum mismatch") || t.contains("unexpected size"),
        "{t}"
    );
    assert!(apt.versions().is_empty(), "apt believed the tampered index");
}

#[test]
fn apt_refuses_a_repo_signed_by_another_key() {
    let d = debs();
    let (k, other) = (key("repo"), key("other"));
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mirror = Mirror::serve(&repo);
    publish(&repo, &[&d.rev[0]], &[&other], &opts()).unwrap();
    let out = gpgv(&k.keyring, &[&repo.join("dists/stable/InRelease")]);
    assert!(!out.status.success(), "{}", text(&out));
    let apt = Apt::new(&format!("{}/", mirror.url()), &k.keyring);
    let out = apt.update();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("NO_PUBKEY"), "{t}");
    assert!(t.contains("is not signed"), "{t}");
    assert!(apt.versions().is_empty());
}

#[test]
fn apt_refuses_an_unsigned_repo() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mirror = Mirror::serve(&repo);
    publish(&repo, &[&d.rev[0]], &[&k], &opts()).unwrap();
    fs::remove_file(repo.join("dists/stable/InRelease")).unwrap();
    fs::remove_file(repo.join("dists/stable/Release.gpg")).unwrap();
    let apt = Apt::new(&format!("{}/", mirror.url()), &k.keyring);
    let out = apt.update();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("is not signed"), "{t}");
    assert!(apt.versions().is_empty());
}

#[test]
fn with_two_keys_a_client_trusting_either_one_updates() {
    let d = debs();
    let (old, new) = (key("old"), key("new"));
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mirror = Mirror::serve(&repo);
    publish(&repo, &[&d.rev[0]], &[&old, &new], &opts()).unwrap();
    // The repository's keyring holds both, and gpgv finds both signatures good.
    let inrelease = repo.join("dists/stable/InRelease");
    let out = gpgv(&repo.join("containerd-stack.gpg"), &[&inrelease]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("Good signature").count(),
        2,
        "{}",
        text(&out)
    );
    let out = gpgv(
        &repo.join("containerd-stack.gpg"),
        &[
            &repo.join("dists/stable/Release.gpg"),
            &repo.join("dists/stable/Release"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("Good signature").count(),
        2,
        "{}",
        text(&out)
    );
    for k in [&old, &new] {
        let out = gpgv(&k.keyring, &[&inrelease]);
        assert!(text(&out).contains("Good signature"), "{}", text(&out));
        let apt = Apt::new(&format!("{}/", mirror.url()), &k.keyring);
        let out = apt.update();
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(apt.versions(), set(&[("2.3.4-1", "amd64")]));
        let apt = Apt::new(&format!("{}/", mirror.url()), &k.armored);
        assert!(apt.update().status.success(), "with the armoured key");
    }
    // Without InRelease apt falls back to Release and its two detached signatures.
    fs::remove_file(&inrelease).unwrap();
    for k in [&old, &new] {
        let apt = Apt::new(&format!("{}/", mirror.url()), &k.keyring);
        let out = apt.update();
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(apt.versions(), set(&[("2.3.4-1", "amd64")]));
    }
}

/// Every pool file the index page links to is there: the page is written after the pool
/// and before anything is deleted.
fn page_links_resolve(repo: &Path) -> Result<(), String> {
    let Ok(page) = fs::read_to_string(repo.join("index.html")) else {
        return Ok(());
    };
    if !page.ends_with("</html>\n") {
        return Err("index.html is not complete".into());
    }
    for (at, _) in page.match_indices("href=\"pool/") {
        let link = &page[at + 6..];
        let link = &link[..link.find('"').unwrap()];
        if !repo.join(link).is_file() {
            return Err(format!("index.html links to {link}, which is not there"));
        }
    }
    Ok(())
}

/// The library's own check of a finished publish, as `repo verify` runs it.
fn verified(repo: &Path, keyring: &Path) {
    let opts = repo::VerifyOptions {
        suite: None,
        now: now(),
    };
    let keyring = containerd_stack::sign::Keyring::load(keyring).unwrap();
    let location = repo::Location::parse(&repo.display().to_string()).unwrap();
    repo::verify(&location, &keyring, &opts, &Quiet).unwrap();
}

#[test]
fn a_publish_stopped_after_any_step_leaves_a_repo_apt_accepts() {
    let d = debs();
    let k = key("repo");
    let keyring = fs::read(&k.keyring).unwrap();
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mirror = Mirror::serve(&repo);
    let new_debs = |paths: &[&PathBuf]| -> Vec<_> {
        paths
            .iter()
            .map(|p| repo::inspect_deb(p).unwrap())
            .collect()
    };

    // The first publish: until InRelease lands there is no repository, then a whole one.
    let current = repo::read_current(&repo, "stable").unwrap();
    let plan = repo::plan(
        &current,
        &new_debs(&[&d.rev[0], &d.rev1_arm64]),
        &[&k.signer],
        &opts(),
    )
    .unwrap();
    for step in &plan.steps {
        repo::apply(&repo, step).unwrap();
        match seen_like_apt(&repo, &keyring) {
            Ok(Seen::Absent | Seen::Unsigned) => {
                assert!(!repo.join("dists/stable/InRelease").exists())
            }
            Ok(Seen::Valid(_)) => {}
            Err(e) => panic!("after {step}: {e}"),
        }
        page_links_resolve(&repo).unwrap_or_else(|e| panic!("after {step}: {e}"));
    }
    verified(&repo, &k.keyring);
    let apt = Apt::new(&format!("{}/", mirror.url()), &k.keyring);
    assert!(apt.update().status.success());
    let old = set(&[("2.3.4-1", "amd64"), ("2.3.4-1", "arm64")]);
    assert_eq!(apt.versions(), old);
    let old_release = live_release(&repo);

    // The next one replaces 2.3.4-1 by 2.3.4-2 (--keep 1), so it deletes files too. After
    // every step the client updates and sees the old repository or the new one, and a
    // client still holding the old InRelease finds every index it names.
    let current = repo::read_current(&repo, "stable").unwrap();
    let mut o = opts();
    o.keep = Some(1);
    let plan = repo::plan(&current, &new_debs(&[&d.rev[1]]), &[&k.signer], &o).unwrap();
    let new = set(&[("2.3.4-2", "amd64"), ("2.3.4-1", "arm64")]);
    let kinds: BTreeSet<&str> = plan
        .steps
        .iter()
        .map(|s| match s {
            Step::CopyDeb { .. } => "copy",
            Step::Write { .. } => "write",
            Step::Remove { .. } => "remove",
        })
        .collect();
    assert_eq!(kinds, BTreeSet::from(["copy", "write", "remove"]));
    let mut went_live = false;
    for step in &plan.steps {
        repo::apply(&repo, step).unwrap();
        let seen = seen_like_apt(&repo, &keyring).unwrap_or_else(|e| panic!("after {step}: {e}"));
        let Seen::Valid(live) = seen else {
            panic!("after {step}: {seen:?}")
        };
        if live.date > old_release.date {
            went_live = true;
        } else {
            assert!(!went_live, "after {step}: went back to the old generation");
        }
        page_links_resolve(&repo).unwrap_or_else(|e| panic!("after {step}: {e}"));
        let out = apt.update();
        assert!(out.status.success(), "after {step}: {}", text(&out));
        let t = text(&out);
        assert!(!t.contains("W:") && !t.contains("E:"), "after {step}: {t}");
        let versions = apt.versions();
        let expected = if went_live { &new } else { &old };
        assert_eq!(&versions, expected, "after {step}");
        for f in &old_release.files {
            let dir = Path::new(&f.path).parent().unwrap();
            let copy = repo
                .join("dists/stable")
                .join(dir)
                .join("by-hash/SHA512")
                .join(f.sha512.as_ref().unwrap());
            assert!(copy.exists(), "after {step}: {} is gone", copy.display());
        }
    }
    assert!(went_live);
    verified(&repo, &k.keyring);
}

#[test]
fn by_hash_keeps_the_live_generation_and_three_before_it() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let mut releases = Vec::new();
    for deb in &d.rev {
        publish(&repo, &[deb], &[&k], &opts()).unwrap();
        releases.push(live_release(&repo));
    }
    let on_disk = |algo: &str| -> BTreeSet<String> {
        fs::read_dir(
            repo.join("dists/stable/main/binary-amd64/by-hash")
                .join(algo),
        )
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
    };
    let listed = |rs: &[Release]| -> BTreeSet<String> {
        rs.iter()
            .flat_map(|r| r.files.iter().map(|f| f.sha512.clone().unwrap()))
            .collect()
    };
    assert_eq!(on_disk("SHA512"), listed(&releases[1..]));
    assert_eq!(on_disk("SHA512").len(), 4 * 3);
    assert_eq!(on_disk("SHA256").len(), 4 * 3);
    for f in &releases[0].files {
        assert!(!on_disk("SHA512").contains(f.sha512.as_ref().unwrap()));
    }
}

#[test]
fn two_publishes_into_one_repo_wait_for_each_other() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let held = repo::lock(&repo, &Quiet).unwrap();
    let recorder = Recorder::default();
    std::thread::scope(|s| {
        let publisher = s.spawn(|| {
            let signers = [&k.signer];
            repo::publish(&repo, &[d.rev[0].clone()], &signers, &opts(), &recorder)
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !publisher.is_finished(),
            "published while the lock was held"
        );
        assert!(!repo.join("dists").exists());
        drop(held);
        publisher.join().unwrap().unwrap();
    });
    let events = recorder.0.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Waiting(w) if w.contains("waiting for another publish"))),
        "{events:?}"
    );
    assert!(repo.join("dists/stable/InRelease").exists());
}

#[test]
fn a_publish_reports_packages_hashed_and_files_written_as_progress() {
    use containerd_stack::listener::Stage;
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let recorder = Recorder::default();
    let given = [d.rev[0].clone(), d.rev[1].clone(), d.rev1_arm64.clone()];
    let plan = repo::publish(&repo, &given, &[&k.signer], &opts(), &recorder).unwrap();
    let events = recorder.0.lock().unwrap();
    // Each stage: Began, then every count up to its total, then Ended.
    for (stage, total) in [(Stage::Hash, 3), (Stage::Publish, plan.steps.len() as u64)] {
        let of_stage: Vec<&Event> = events
            .iter()
            .filter(|e| match e {
                Event::Began { stage: s, .. }
                | Event::Ended { stage: s, .. }
                | Event::Progress { stage: s, .. } => *s == stage,
                _ => false,
            })
            .collect();
        assert!(
            matches!(of_stage.first(), Some(Event::Began { .. })),
            "{of_stage:?}"
        );
        assert!(
            matches!(of_stage.last(), Some(Event::Ended { .. })),
            "{of_stage:?}"
        );
        let mut done: Vec<u64> = of_stage
            .iter()
            .filter_map(|e| match e {
                Event::Progress { done, total: t, .. } => {
                    assert_eq!(*t, total, "{e:?}");
                    Some(*done)
                }
                _ => None,
            })
            .collect();
        // Hashing runs on several threads, so its counts may arrive out of order.
        done.sort();
        assert_eq!(done, (1..=total).collect::<Vec<_>>(), "{stage:?}");
    }
    // Hashing is over before the first file is written.
    let ended_hash = events
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::Ended {
                    stage: Stage::Hash,
                    ..
                }
            )
        })
        .unwrap();
    let began_publish = events
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::Began {
                    stage: Stage::Publish,
                    ..
                }
            )
        })
        .unwrap();
    assert!(ended_hash < began_publish);
}

#[test]
fn adding_one_package_to_a_thousand_package_repo_reads_no_package_again() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    // A thousand published versions, planned from control files alone: their pool files
    // are never written, and a publish that opened one would fail.
    let control = containerd_stack::deb::read::read_control(&d.rev[0]).unwrap();
    let template = repo::deb822::parse(&control).unwrap().remove(0);
    let synthetic: Vec<repo::packages::NewDeb> = (0..1000)
        .map(|i| {
            let mut c = template.clone();
            c.set("Version", format!("2.3.4~pre{i}-1"));
            repo::packages::NewDeb {
                staged: None,
                path: PathBuf::from(format!("/nonexistent/{i}.deb")),
                control: c,
                templates: None,
                size: 30_000_000 + i,
                md5: format!("{i:032x}"),
                sha256: format!("{i:064x}"),
            }
        })
        .collect();
    // Dated in the past, so the timed publish has no Date to wait for.
    let plan = repo::plan(
        &repo::read_current(&repo, "stable").unwrap(),
        &synthetic,
        &[&k.signer],
        &PublishOptions::new(now() - 10),
    )
    .unwrap();
    for step in plan
        .steps
        .iter()
        .filter(|s| !matches!(s, Step::CopyDeb { .. }))
    {
        repo::apply(&repo, step).unwrap();
    }
    // How fast this is, is shown by `cargo xtask bench`, not asserted here.
    let plan = publish(&repo, &[&d.rev[1]], &[&k], &opts()).unwrap();
    assert_eq!(plan.added.len(), 1);
    let packages = read(repo.join("dists/stable/main/binary-amd64/Packages"));
    assert_eq!(packages.matches("\nVersion: ").count(), 1001);
}

#[test]
fn publishing_one_package_at_a_time_ends_with_the_files_a_cold_publish_of_them_writes() {
    let d = debs();
    let k = key("repo");
    let dir = TempDir::new().unwrap();
    let (one_by_one, cold) = (dir.path().join("one-by-one"), dir.path().join("cold"));
    let all: Vec<&PathBuf> = d.rev.iter().chain([&d.rev1_arm64]).collect();
    // A clock one second on for each publish, in the past so none waits for its Date: the
    // last publish and the cold one are both dated `last` and sign at that time.
    let start = now() - 3600;
    for (i, deb) in all.iter().enumerate() {
        publish(
            &one_by_one,
            &[deb],
            &[&k],
            &PublishOptions::new(start + i as u64),
        )
        .unwrap();
    }
    let last = start + all.len() as u64 - 1;
    publish(&cold, &all, &[&k], &PublishOptions::new(last)).unwrap();
    assert_eq!(live_release(&cold).date, last);

    // The publish record keeps earlier generations and first-publish dates, and by-hash
    // keeps the copies earlier Releases named: only those may differ. The page shows when
    // each file was first published, and nothing else may differ on it.
    let live: BTreeSet<String> = live_release(&cold)
        .files
        .iter()
        .flat_map(|f| repo::plan::by_hash_paths("dists/stable", f))
        .collect();
    assert_eq!(
        live.len(),
        12,
        "SHA256 and SHA512 of 3 files for 2 architectures"
    );
    let compared = |root: &Path| -> Vec<(String, Vec<u8>)> {
        snapshot(root)
            .into_iter()
            .map(|(p, bytes)| {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                (rel, bytes)
            })
            .filter(|(rel, _)| {
                !rel.starts_with(".state/")
                    && rel != ".lock"
                    && (!rel.contains("/by-hash/") || live.contains(rel))
            })
            .map(|(rel, bytes)| match rel.as_str() {
                "index.html" => (rel, without_times(&String::from_utf8(bytes).unwrap())),
                _ => (rel, bytes),
            })
            .collect()
    };
    let (a, b) = (compared(&one_by_one), compared(&cold));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{name} differs from a cold publish of the same packages"
        );
    }
    // And the dates the page shows are each file's own publish.
    let page = read(one_by_one.join("index.html"));
    for i in 0..all.len() as u64 {
        let t = containerd_stack::render::rfc3339(start + i);
        assert!(page.contains(&format!("<time datetime=\"{t}\">")), "{t}");
    }
}

/// `html` with every `<time …>…</time>` element taken out.
fn without_times(html: &str) -> Vec<u8> {
    let mut out = String::new();
    let mut rest = html;
    while let Some(at) = rest.find("<time ") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("</time>").expect("a closed <time>") + at;
        rest = &rest[end + "</time>".len()..];
    }
    out.push_str(rest);
    out.into_bytes()
}
