//! The `index.html` every `repo publish` writes, judged as a person sees it: the repository
//! served on loopback and loaded in Debian's headless Chromium, whose DOM must hold every
//! package row, the set-up commands, the keys and the preseed lines, and whose every pool
//! link must answer. A screenshot is kept in `target/test-artifacts/`. The page is also
//! checked for what a publish promises about it: the same repository gives the same bytes,
//! it is written after the Release files, it is in no index, and an older repository's
//! record is carried over.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use containerd_stack::deb::read::read_control_member;
use containerd_stack::listener::Quiet;
use containerd_stack::repo::release::{cleartext, Release};
use containerd_stack::repo::{self, debconf, packages, Plan, PublishOptions, Step};
use containerd_stack::sign::Signer;
use sha2::{Digest, Sha256, Sha512};
use tempfile::TempDir;
use testkit::{repo_key, Mirror};

use crate::common::{now, three_debs};

fn publish(repo: &Path, debs: &[PathBuf], signers: &[&Signer], opts: &PublishOptions) -> Plan {
    repo::publish(repo, debs, signers, opts, &Quiet).unwrap()
}

fn live(repo: &Path, suite: &str) -> Release {
    let text = fs::read_to_string(repo.join(format!("dists/{suite}/InRelease"))).unwrap();
    Release::parse(&cleartext(&text).unwrap()).unwrap()
}

/// `(suite, component, arch, entry)` of every stanza of every suite, read from the indexes.
fn every_entry(repo: &Path, suites: &[&str]) -> Vec<(String, String, String, packages::Entry)> {
    let mut out = Vec::new();
    for suite in suites {
        for f in live(repo, suite).files {
            let Some(dir) = f.path.strip_suffix("/Packages") else {
                continue;
            };
            let (component, binary) = dir.split_once('/').unwrap();
            let arch = binary.strip_prefix("binary-").unwrap();
            let text = fs::read_to_string(repo.join(format!("dists/{suite}/{}", f.path))).unwrap();
            for e in packages::parse(&text).unwrap() {
                out.push((suite.to_string(), component.into(), arch.into(), e));
            }
        }
    }
    out
}

/// Headless Chromium as root, with nothing of its own reaching out to the network; fails,
/// never skips, when it is not installed.
fn chromium(args: &[&str]) -> Output {
    if let Err(e) = Command::new("chromium").arg("--version").output() {
        panic!("chromium: {e}: install the Debian package chromium (`cargo xtask ci` installs it)");
    }
    let profile = TempDir::new().unwrap();
    // `timeout` bounds a browser that hangs on a busy machine; it never cuts a normal run.
    let out = Command::new("timeout")
        .arg("300")
        .args([
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `<tr id="…">…</tr>` of `id` in `dom`.
fn row<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no row {id} in the page"));
    let end = dom[start..].find("</tr>").unwrap();
    &dom[start..start + end]
}

#[test]
fn chromium_shows_every_package_the_commands_the_keys_and_the_settings() {
    let d = three_debs();
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let keys = dir.path().join("keys");
    let (old, new) = (
        repo_key(&keys, "old", now() - 7200),
        repo_key(&keys, "new", now() - 3600),
    );
    let mirror = Mirror::serve(&repo);
    let url = format!("{}/", mirror.url());
    let t = now() - 10;
    let mut o = PublishOptions::new(t);
    o.url = Some(url.clone());
    publish(&repo, &d[..2], &[&old.signer, &new.signer], &o);
    o.suite = "testing".into();
    o.now = t + 1;
    let plan = publish(&repo, &d[2..], &[&old.signer, &new.signer], &o);

    let out = chromium(&["--dump-dom", &url]);
    let dom = String::from_utf8(out.stdout).unwrap();
    assert!(
        dom.contains("<title>containerd-stack apt repository</title>"),
        "{dom}"
    );
    // Nothing but the page itself was asked for: no script, style sheet, font or image.
    let asked: BTreeSet<String> = mirror.requests().into_iter().collect();
    assert!(
        asked.iter().all(|p| p == "/" || p == "/favicon.ico"),
        "{asked:?}"
    );
    for foreign in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!dom.contains(foreign), "{foreign} in the page");
    }

    // Every stanza of every suite is a row: name, version, size, sha256, link, date.
    let entries = every_entry(&repo, &["stable", "testing"]);
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(dom.matches("<tr id=\"").count(), entries.len());
    for (suite, component, arch, e) in &entries {
        let id = format!(
            "{suite}/{component}/{arch}/{}_{}_{}",
            e.package, e.version, e.architecture
        );
        let r = row(&dom, &id);
        for part in [
            format!("<td class=\"pkg\">{}</td>", e.package),
            format!(">{}</td>", e.version),
            format!("title=\"{} bytes\"", e.size),
            format!("<td class=\"sha\">{}</td>", e.sha256),
            format!("<a href=\"{}\">", e.filename),
            "<time datetime=\"".to_owned(),
        ] {
            assert!(r.contains(&part), "row {id} lacks {part}: {r}");
        }
    }
    // The set-up commands, with the URL the repository is served at.
    assert_eq!(plan.client_commands.len(), 2);
    for c in &plan.client_commands {
        assert!(c.contains(&url), "{c}");
        assert!(dom.contains(c.as_str()), "{c} is not on the page");
    }
    // Both keys, and that a rotation is under way.
    for (k, tag) in [(&old, "old"), (&new, "new")] {
        let grouped: Vec<String> = k
            .fingerprint
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let shown = format!("{}<span class=\"tag\">{tag}</span>", grouped.join(" "));
        assert!(dom.contains(&shown), "{shown} is not on the page");
    }
    assert!(dom.contains("Key rotation in progress."));
    // The preseed lines come from the packages' own debconf templates.
    let templates = read_control_member(&d[2]).unwrap().templates.unwrap();
    let questions = debconf::parse(&templates).unwrap();
    assert!(
        questions
            .iter()
            .any(|q| q.name == "containerd-stack/systemd_cgroup"),
        "{questions:?}"
    );
    for q in &questions {
        let line = q.command("containerd-stack");
        assert!(dom.contains(&line), "{line} is not on the page");
    }

    // Every pool link answers.
    let links: BTreeSet<&str> = dom
        .match_indices("href=\"pool/")
        .map(|(at, _)| {
            let link = &dom[at + 6..];
            &link[..link.find('"').unwrap()]
        })
        .collect();
    assert_eq!(links.len(), 3, "{links:?}");
    let client = reqwest::blocking::Client::new();
    for link in links {
        let r = client.get(format!("{url}{link}")).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{link}");
        let bytes = r.bytes().unwrap();
        assert!(
            entries.iter().any(|(_, _, _, e)| e.filename == link
                && e.sha256 == hex::encode(Sha256::digest(&bytes))),
            "{link} is not the file its row describes"
        );
    }

    // How it looks, for a person to check.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("repo-index.png");
    let _ = fs::remove_file(&png);
    chromium(&[
        "--hide-scrollbars",
        "--window-size=1280,2400",
        &format!("--screenshot={}", png.display()),
        &url,
    ]);
    let shot = fs::read(&png).unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "{} is no PNG", png.display());
}

#[test]
fn the_page_is_deterministic_written_after_the_release_and_in_no_index() {
    let d = three_debs();
    let dir = TempDir::new().unwrap();
    let key = repo_key(&dir.path().join("keys"), "repo", now() - 3600);
    let o = PublishOptions::new(now() - 5);
    let pages: Vec<Vec<u8>> = ["a", "b"]
        .iter()
        .map(|name| {
            let repo = dir.path().join(name);
            publish(&repo, &d[..2], &[&key.signer], &o);
            fs::read(repo.join("index.html")).unwrap()
        })
        .collect();
    assert_eq!(pages[0], pages[1], "the same repository, the same page");
    assert!(pages[0].ends_with(b"</html>\n"));

    let repo = dir.path().join("a");
    let sha256 = hex::encode(Sha256::digest(&pages[0]));
    let sha512 = hex::encode(Sha512::digest(&pages[0]));
    let r = live(&repo, "stable");
    assert!(r.files.iter().all(|f| !f.path.contains("index")), "{r:?}");
    for arch in ["amd64", "arm64"] {
        let by_hash = repo.join(format!("dists/stable/main/binary-{arch}/by-hash"));
        assert!(by_hash.join("SHA256").is_dir());
        assert!(!by_hash.join("SHA256").join(&sha256).exists());
        assert!(!by_hash.join("SHA512").join(&sha512).exists());
    }

    // The next publish writes it whole, after the Release files and the record.
    let current = repo::read_current(&repo, "stable").unwrap();
    let new = vec![repo::inspect_deb(&d[2]).unwrap()];
    let mut later = PublishOptions::new(now());
    later.keep = Some(1);
    let plan = repo::plan(&current, &new, &[&key.signer], &later).unwrap();
    let at = |path: &str| plan.steps.iter().position(|s| s.path() == path).unwrap();
    let page = at("index.html");
    assert!(matches!(plan.steps[page], Step::Write { .. }));
    assert!(page > at("dists/stable/InRelease"));
    assert!(page > at(".state/stable.json"));
    // …and before any file it no longer links to is deleted.
    let removes: Vec<usize> = (0..plan.steps.len())
        .filter(|&i| matches!(plan.steps[i], Step::Remove { .. }))
        .collect();
    assert!(!removes.is_empty(), "--keep 1 drops revision 1");
    assert!(removes.iter().all(|&i| i > page));
}

#[test]
fn a_repository_from_before_dates_and_templates_were_kept_gets_them_on_its_next_publish() {
    let d = three_debs();
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let key = repo_key(&dir.path().join("keys"), "repo", now() - 3600);
    let first = now() - 20;
    publish(&repo, &d[..1], &[&key.signer], &PublishOptions::new(first));
    // The record an older publisher wrote: generations and pool files, nothing else.
    let state_file = repo.join(".state/stable.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&state_file).unwrap()).unwrap();
    let fields = record.as_object_mut().unwrap();
    for newer in ["first_published", "debconf", "templates"] {
        assert!(fields.remove(newer).is_some(), "{newer} was recorded");
    }
    fs::write(&state_file, serde_json::to_vec(&record).unwrap()).unwrap();

    // Re-signed with no package: the page still shows the settings (read from the pool
    // file, once) and dates the package by the Release that was live.
    publish(&repo, &[], &[&key.signer], &PublishOptions::new(now() - 10));
    let page = fs::read_to_string(repo.join("index.html")).unwrap();
    let templates = read_control_member(&d[0]).unwrap().templates.unwrap();
    for q in debconf::parse(&templates).unwrap() {
        let line = containerd_stack::repo::page::esc(&q.command("containerd-stack"));
        assert!(page.contains(&line), "{line}");
    }
    let id = "stable/main/amd64/containerd-stack_2.3.4-1_amd64";
    assert!(row(&page, id).contains("≤ <time"), "{}", row(&page, id));
    let record: repo::plan::SuiteState =
        serde_json::from_slice(&fs::read(&state_file).unwrap()).unwrap();
    let pool = "pool/main/c/containerd-stack/containerd-stack_2.3.4-1_amd64.deb";
    assert_eq!(record.first_published[pool].date, first);
    assert!(record.first_published[pool].or_earlier);
    assert!(
        record.debconf.contains_key(pool),
        "now recorded: {record:?}"
    );

    // A package added now has its exact date.
    let plan = publish(&repo, &d[2..], &[&key.signer], &PublishOptions::new(now()));
    let page = fs::read_to_string(repo.join("index.html")).unwrap();
    let id = "stable/main/amd64/containerd-stack_2.3.4-2_amd64";
    assert!(!row(&page, id).contains('≤'), "{}", row(&page, id));
    let record: repo::plan::SuiteState =
        serde_json::from_slice(&fs::read(&state_file).unwrap()).unwrap();
    let pool = "pool/main/c/containerd-stack/containerd-stack_2.3.4-2_amd64.deb";
    assert_eq!(
        record.first_published[pool],
        repo::plan::FirstPublished {
            date: plan.release.date,
            or_earlier: false
        }
    );
}
