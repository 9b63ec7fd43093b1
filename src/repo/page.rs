//! `index.html` at the repository root: what a person opening the repository's URL in a
//! browser should learn — what it holds, the two commands that set a client up, the signing
//! keys' fingerprints, the install-time settings that can be preseeded, and every package
//! of every suite with its size, sha256, pool file and the date it was first published. One
//! self-contained file (inline CSS, nothing fetched from elsewhere, no script), rendered
//! from the planner's data alone: the same repository gives the same bytes. It is not part
//! of what apt reads, and the page says that its fingerprints are only as trustworthy as
//! the connection it came over.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::debconf::{self, Question};
use super::packages::{self, Entry};
use super::plan::{FirstPublished, SuiteState};
use super::release::Release;
use super::version::compare_versions;
use super::{CLIENT_NAME, PLACEHOLDER_URL};

/// A key the repository is signed with.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub fingerprint: String,
    pub user_id: String,
    /// Unix seconds.
    pub created: u64,
}

/// One suite as the page shows it.
#[derive(Debug, Clone, Copy)]
pub struct SuiteView<'a> {
    pub release: &'a Release,
    pub indexes: &'a BTreeMap<(String, String), Vec<Entry>>,
    pub state: &'a SuiteState,
}

/// Everything on the page.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    /// The Release being published: its Label names the page, and its suite is the one
    /// `containerd-stack.sources` names.
    pub published: &'a Release,
    /// Ends with `/`.
    pub url: &'a str,
    pub commands: &'a [String],
    pub keys: Vec<SigningKey>,
    /// Sorted by name.
    pub suites: Vec<SuiteView<'a>>,
    /// Templates of pool files no record has them for, read from the pool.
    pub templates_read: &'a BTreeMap<String, Option<String>>,
}

const STYLE: &str = "
:root{color-scheme:light;--ink:#1d2329;--soft:#5b6670;--line:#d8dee4;--band:#f3f6f8;--accent:#0b5cad;--warn:#fff4d6}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:var(--ink);background:#fff}
header{background:#16324f;color:#fff;padding:1.6rem 0 1.3rem}
header h1{margin:0 0 .3rem;font-size:1.7rem;font-weight:650}
header p{margin:.2rem 0;color:#d6e2ee}
.wrap{max-width:76rem;margin:0 auto;padding:0 1.25rem}
nav{background:var(--band);border-bottom:1px solid var(--line);font-size:.9rem}
nav a{display:inline-block;padding:.45rem .9rem .45rem 0;color:var(--accent);text-decoration:none}
main{padding:.5rem 0 2rem}
h2{font-size:1.25rem;margin:2rem 0 .6rem;padding-bottom:.25rem;border-bottom:2px solid var(--line)}
h3{font-size:1.02rem;margin:1.4rem 0 .4rem}
h3 small,.meta{color:var(--soft);font-weight:normal}
a{color:var(--accent)}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:.86em}
pre{background:#0f1b26;color:#e4edf5;padding:.8rem 1rem;border-radius:6px;overflow-x:auto;line-height:1.45}
pre code{font-size:.84rem}
ul.holds{margin:.4rem 0 .4rem 1.2rem;padding:0}
table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem;font-size:.9rem}
th,td{text-align:left;vertical-align:top;padding:.35rem .6rem;border-bottom:1px solid var(--line)}
th{background:var(--band);font-weight:600;white-space:nowrap}
tbody tr:hover{background:#f8fafb}
td.num{text-align:right;white-space:nowrap}
td.sha{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:.74rem;word-break:break-all;min-width:16rem;color:#33404b}
td.when,td.pkg,td.q{white-space:nowrap}
.note{background:var(--warn);border-left:4px solid #e0a100;padding:.55rem .8rem;margin:.6rem 0;border-radius:0 4px 4px 0}
.tag{display:inline-block;font-size:.72rem;font-weight:600;padding:.05rem .4rem;border-radius:3px;background:#e3ecf6;color:#16324f;margin-left:.4rem;vertical-align:middle}
footer{border-top:1px solid var(--line);color:var(--soft);font-size:.82rem;padding:1rem 0 2rem}
";

/// The page's HTML.
pub fn render(page: &Page) -> String {
    let mut out = String::with_capacity(4096 + rows(page) * 420);
    let label = page.published.label.as_str();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} apt repository</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(label)
    );
    header(&mut out, page, label);
    let _ = writeln!(
        out,
        "<nav><div class=\"wrap\"><a href=\"#setup\">Set up a client</a><a href=\"#keys\">Signing keys</a><a href=\"#settings\">Install-time settings</a>{}</div></nav>\n<main class=\"wrap\">",
        page.suites
            .iter()
            .map(|s| format!(
                "<a href=\"#suite-{0}\">Suite {0}</a>",
                esc(&s.release.suite)
            ))
            .collect::<String>()
    );
    setup(&mut out, page);
    keys(&mut out, page);
    settings(&mut out, page);
    for suite in &page.suites {
        suite_tables(&mut out, suite);
    }
    let _ = writeln!(
        out,
        "</main>\n<footer><div class=\"wrap\">Written by containerd-stack {} with every publish. This page is not signed: apt checks each file against the signed <code>InRelease</code> of its suite, but a fingerprint read here is only as trustworthy as the connection it came over.</div></footer>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn rows(page: &Page) -> usize {
    page.suites
        .iter()
        .flat_map(|s| s.indexes.values())
        .map(Vec::len)
        .sum()
}

/// The newest entry of each package among `entries`.
pub(super) fn newest_by_package<'a>(
    entries: impl Iterator<Item = &'a Entry>,
) -> BTreeMap<&'a str, &'a Entry> {
    let mut out: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries {
        match out.get(e.package.as_str()) {
            Some(have) if packages::order(have, e).is_ge() => {}
            _ => {
                out.insert(&e.package, e);
            }
        }
    }
    out
}

fn header(out: &mut String, page: &Page, label: &str) {
    let all = page
        .suites
        .iter()
        .flat_map(|s| s.indexes.values().flatten());
    let newest = newest_by_package(all);
    let _ = writeln!(
        out,
        "<header><div class=\"wrap\"><h1>{}</h1><p>A signed apt repository of static files. It holds:</p>",
        esc(label)
    );
    let _ = writeln!(out, "<ul class=\"holds\">");
    for (name, e) in &newest {
        let synopsis = e
            .stanza
            .get("Description")
            .and_then(|d| d.lines().next())
            .unwrap_or("");
        let _ = writeln!(
            out,
            "<li><strong>{}</strong> — {} <span class=\"meta\" style=\"color:#b9cbdc\">(newest {})</span></li>",
            esc(name),
            esc(synopsis),
            esc(&e.version)
        );
    }
    let _ = writeln!(out, "</ul>");
    let suites: Vec<String> = page
        .suites
        .iter()
        .map(|s| {
            format!(
                "<strong>{}</strong> ({}; {})",
                esc(&s.release.suite),
                esc(&s.release.architectures.join(", ")),
                esc(&s.release.components.join(", "))
            )
        })
        .collect();
    let _ = writeln!(out, "<p>Suites: {}.</p></div></header>", suites.join(", "));
}

fn setup(out: &mut String, page: &Page) {
    let _ = writeln!(out, "<section id=\"setup\"><h2>Set up a client</h2>");
    if page.url == PLACEHOLDER_URL {
        let _ = writeln!(
            out,
            "<p class=\"note\">This repository was published without the URL it is served at: replace <code>{}</code> below, and in <code>{CLIENT_NAME}.sources</code>, with that URL.</p>",
            esc(PLACEHOLDER_URL)
        );
    }
    let last = page.published;
    let _ = writeln!(
        out,
        "<p>On each Debian or Ubuntu machine, fetch the keyring and the source, then install:</p>\n<pre><code>{}\nsudo apt-get update &amp;&amp; sudo apt-get install {CLIENT_NAME}</code></pre>",
        page.commands
            .iter()
            .map(|c| esc(c))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = writeln!(
        out,
        "<p><a href=\"{CLIENT_NAME}.sources\"><code>{CLIENT_NAME}.sources</code></a> names suite <code>{}</code> and component{} <code>{}</code>, and trusts only <a href=\"{CLIENT_NAME}.gpg\"><code>{CLIENT_NAME}.gpg</code></a> (also as <a href=\"{CLIENT_NAME}.asc\">armoured text</a>) for it.</p>",
        esc(&last.suite),
        if last.components.len() == 1 { "" } else { "s" },
        esc(&last.components.join(" "))
    );
    let _ = writeln!(out, "</section>");
}

fn keys(out: &mut String, page: &Page) {
    let _ = writeln!(
        out,
        "<section id=\"keys\"><h2>Signing keys</h2>\n<p><a href=\"{CLIENT_NAME}.gpg\"><code>{CLIENT_NAME}.gpg</code></a> holds {}, and the last publish signed its suite's <code>InRelease</code> and <code>Release.gpg</code> with {}:</p>",
        match page.keys.len() {
            1 => "one key".to_owned(),
            n => format!("{n} keys"),
        },
        match page.keys.len() {
            1 => "it",
            _ => "each",
        }
    );
    let rotating = page.keys.len() > 1;
    let newest = page.keys.iter().map(|k| k.created).max();
    let oldest = page.keys.iter().map(|k| k.created).min();
    let _ = writeln!(
        out,
        "<table><thead><tr><th>Fingerprint</th><th>User ID</th><th>Created</th></tr></thead><tbody>"
    );
    for k in &page.keys {
        let tag = match (rotating, Some(k.created)) {
            (false, _) => "",
            (true, c) if newest != oldest && c == newest => "<span class=\"tag\">new</span>",
            (true, c) if newest != oldest && c == oldest => "<span class=\"tag\">old</span>",
            (true, _) => "<span class=\"tag\">rotating</span>",
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"mono\">{}{tag}</td><td>{}</td><td class=\"when\">{}</td></tr>",
            esc(&grouped(&k.fingerprint)),
            esc(&k.user_id),
            day(k.created)
        );
    }
    let _ = writeln!(out, "</tbody></table>");
    if rotating {
        let _ = writeln!(
            out,
            "<p class=\"note\"><strong>Key rotation in progress.</strong> apt needs one good signature from a key it trusts, so clients holding any one of these keys keep updating. <code>{CLIENT_NAME}.gpg</code> holds them all; once every client has fetched it, the repository can be signed by the new key alone.</p>"
        );
    }
    let _ = writeln!(out, "</section>");
}

/// A fingerprint in groups of four, as gpg prints it.
fn grouped(fingerprint: &str) -> String {
    fingerprint
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The templates text of the newest version of each package in each suite, grouped by
/// package and text: one table per distinct set of questions, naming where it applies.
fn settings(out: &mut String, page: &Page) {
    let mut groups: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for suite in &page.suites {
        for (name, e) in newest_by_package(suite.indexes.values().flatten()) {
            let text = suite
                .state
                .debconf
                .get(&e.filename)
                .and_then(|k| suite.state.templates.get(k))
                .map(String::as_str)
                .or_else(|| page.templates_read.get(&e.filename)?.as_deref());
            if let Some(text) = text {
                groups
                    .entry((name, text))
                    .or_default()
                    .push(format!("{} {}", suite.release.suite, e.version));
            }
        }
    }
    let _ = writeln!(
        out,
        "<section id=\"settings\"><h2>Install-time settings</h2>"
    );
    let mut any = false;
    for ((package, text), applies) in &groups {
        let Ok(questions) = debconf::parse(text) else {
            continue;
        };
        if questions.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(
            out,
            "<h3>{} <small>({})</small></h3>\n<p>Asked at install time (debconf). To answer ahead of time — on an unattended install, or to change the default — preseed them before <code>apt-get install</code>:</p>",
            esc(package),
            esc(&applies.join(", "))
        );
        let _ = writeln!(
            out,
            "<pre><code>{}</code></pre>",
            questions
                .iter()
                .map(|q| esc(&q.command(package)))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let _ = writeln!(
            out,
            "<table><thead><tr><th>Question</th><th>Type</th><th>Default</th><th>What it sets</th></tr></thead><tbody>"
        );
        for q in &questions {
            question_row(out, q);
        }
        let _ = writeln!(out, "</tbody></table>");
    }
    if !any {
        let _ = writeln!(
            out,
            "<p>The packages here ask no install-time questions.</p>"
        );
    }
    let _ = writeln!(out, "</section>");
}

fn question_row(out: &mut String, q: &Question) {
    let default = match q.kind.as_str() {
        "password" => String::new(),
        _ => q.default.clone().unwrap_or_default(),
    };
    let choices = q
        .choices
        .as_ref()
        .map(|c| format!("<br><span class=\"meta\">choices: {}</span>", esc(c)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<tr><td class=\"mono q\">{}</td><td>{}</td><td class=\"mono\">{}{choices}</td><td><strong>{}</strong>{}</td></tr>",
        esc(&q.name),
        esc(&q.kind),
        esc(&default),
        esc(&q.synopsis),
        q.extended
            .iter()
            .map(|p| format!("<br>{}", esc(p)))
            .collect::<String>()
    );
}

fn suite_tables(out: &mut String, suite: &SuiteView) {
    let r = suite.release;
    let name = esc(&r.suite);
    let valid = r
        .valid_until
        .map(|v| format!(" · valid until {}", when(v)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<section id=\"suite-{name}\"><h2>Suite {name}</h2>\n<p class=\"meta\">Codename {} · released {}{valid} · <a href=\"dists/{name}/InRelease\">InRelease</a></p>",
        esc(&r.codename),
        when(r.date)
    );
    let mut bounded = false;
    for ((component, arch), entries) in suite.indexes {
        // Newest first: what a person looks for, and what apt installs.
        let mut entries: Vec<&Entry> = entries.iter().collect();
        entries.sort_by(|a, b| {
            a.package
                .cmp(&b.package)
                .then_with(|| compare_versions(&b.version, &a.version))
                .then_with(|| a.architecture.cmp(&b.architecture))
        });
        let _ = writeln!(
            out,
            "<h3>{} / {} <small>— {} package{}</small></h3>\n<table><thead><tr><th>Package</th><th>Version</th><th>Size</th><th>SHA256</th><th>File</th><th>Published</th></tr></thead><tbody>",
            esc(component),
            esc(arch),
            entries.len(),
            if entries.len() == 1 { "" } else { "s" }
        );
        for e in entries {
            let first = suite
                .state
                .first_published
                .get(&e.filename)
                .copied()
                .unwrap_or(FirstPublished {
                    date: r.date,
                    or_earlier: true,
                });
            bounded |= first.or_earlier;
            let file = e.filename.rsplit('/').next().unwrap_or(&e.filename);
            let _ = writeln!(
                out,
                "<tr id=\"{}\"><td class=\"pkg\">{}</td><td class=\"mono\">{}</td><td class=\"num\" title=\"{} bytes\">{}</td><td class=\"sha\">{}</td><td><a href=\"{}\">{}</a></td><td class=\"when\">{}{}</td></tr>",
                esc(&format!("{}/{component}/{arch}/{}_{}_{}", r.suite, e.package, e.version, e.architecture)),
                esc(&e.package),
                esc(&e.version),
                e.size,
                size(e.size),
                esc(&e.sha256),
                esc(&href(&e.filename)),
                esc(file),
                if first.or_earlier { "≤ " } else { "" },
                when(first.date)
            );
        }
        let _ = writeln!(out, "</tbody></table>");
    }
    if bounded {
        let _ = writeln!(
            out,
            "<p class=\"meta\">≤: published on or before that date (the file was already here when this repository began to record publish dates).</p>"
        );
    }
    let _ = writeln!(out, "</section>");
}

/// `&`, `<`, `>` and quotes escaped: every text on the page comes from packages' control
/// files, which anyone building a package writes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative link to a repository path: characters a URL path cannot hold as they are
/// percent-encoded, so the link works on any host and under any prefix.
fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b'+' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `31.2 MB`, `980 kB`, `512 B`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.0} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// `<time datetime="2026-12-27T08:33:14Z">2026-12-27 08:33 UTC</time>`.
fn when(epoch: u64) -> String {
    let (y, m, d) = crate::render::civil_from_days((epoch / 86_400) as i64);
    let s = epoch % 86_400;
    let (h, min, sec) = (s / 3600, s / 60 % 60, s % 60);
    format!(
        "<time datetime=\"{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{sec:02}Z\">{y:04}-{m:02}-{d:02} {h:02}:{min:02} UTC</time>"
    )
}

/// When `epoch` falls, as a day.
fn day(epoch: u64) -> String {
    let (y, m, d) = crate::render::civil_from_days((epoch / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::deb822;

    fn entry(package: &str, version: &str, description: &str) -> Entry {
        let stanza = deb822::parse(&format!(
            "Package: {package}\nVersion: {version}\nArchitecture: amd64\nDescription: {description}\nFilename: pool/main/c/{package}/{package}_{version}_amd64.deb\nSize: 31234567\nSHA256: {}\n",
            "ab".repeat(32)
        ))
        .unwrap()
        .remove(0);
        Entry::from_stanza(stanza).unwrap()
    }

    fn release(suite: &str) -> Release {
        Release {
            origin: "o".into(),
            label: "Example <ops>".into(),
            suite: suite.into(),
            codename: suite.into(),
            date: 1_798_360_394,
            valid_until: None,
            architectures: vec!["amd64".into()],
            components: vec!["main".into()],
            files: Vec::new(),
        }
    }

    #[test]
    fn text_from_control_files_is_escaped_and_links_are_relative() {
        let r = release("stable");
        let indexes = BTreeMap::from([(
            ("main".to_owned(), "amd64".to_owned()),
            vec![entry(
                "evil",
                "1.0~rc1-1",
                "<script>alert(1)</script> & more",
            )],
        )]);
        let state = SuiteState::default();
        let read = BTreeMap::new();
        let commands = vec!["sudo curl A".to_owned(), "sudo curl B".to_owned()];
        let html = render(&Page {
            published: &r,
            url: "https://apt.example.org/",
            commands: &commands,
            keys: vec![SigningKey {
                fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567".into(),
                user_id: "Ops <ops@example.org>".into(),
                created: 1_700_000_000,
            }],
            suites: vec![SuiteView {
                release: &r,
                indexes: &indexes,
                state: &state,
            }],
            templates_read: &read,
        });
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
        assert!(html.contains("<title>Example &lt;ops&gt; apt repository</title>"));
        assert!(html.contains("href=\"pool/main/c/evil/evil_1.0~rc1-1_amd64.deb\""));
        assert!(html.contains("<td class=\"num\" title=\"31234567 bytes\">31.2 MB</td>"));
        assert!(html.contains("0123 4567 89AB CDEF"));
        assert!(!html.contains("Key rotation"), "one key is no rotation");
        // No record of when it was published: the Release's Date, as a bound.
        assert!(
            html.contains("≤ <time datetime=\"2026-12-27T08:33:14Z\">"),
            "{html}"
        );
        // Nothing is fetched from elsewhere.
        assert!(!html.contains("src="));
        assert!(!html.contains("http://") && !html.contains("@import"));
    }

    #[test]
    fn links_percent_encode_what_a_path_cannot_hold() {
        assert_eq!(href("pool/a b/x%y.deb"), "pool/a%20b/x%25y.deb");
        assert_eq!(
            href("pool/main/c/p/p_1.0+b1_amd64.deb"),
            "pool/main/c/p/p_1.0+b1_amd64.deb"
        );
    }
}
