//! The `Release` file of a suite: what it says about the archive (Origin, Label, Suite,
//! Codename, Date, Valid-Until, Architectures, Components, `Acquire-By-Hash`) and the size
//! and hashes of every index under it. It is rendered here, and parsed back from the
//! previous publish (taken from `InRelease` when there is one, since that is the file apt
//! reads first) so the next publish knows the previous Date and indexes.

use crate::render::rfc2822;

use super::deb822;

/// One index listed in a Release file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    /// Relative to `dists/<suite>/`, e.g. `main/binary-amd64/Packages.xz`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Present in every Release this module writes; older or foreign ones may lack it.
    pub sha512: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub origin: String,
    pub label: String,
    pub suite: String,
    pub codename: String,
    /// Unix seconds.
    pub date: u64,
    pub valid_until: Option<u64>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub files: Vec<IndexFile>,
}

impl Release {
    /// The Release text: apt needs SHA256 for every index (MD5Sum and SHA1 alone are
    /// refused as weak) and asks for the strongest hash listed, so SHA512 comes with
    /// `by-hash/SHA512/` copies of every index.
    pub fn render(&self) -> String {
        let mut p = deb822::Paragraph::new();
        p.set("Origin", &self.origin);
        p.set("Label", &self.label);
        p.set("Suite", &self.suite);
        p.set("Codename", &self.codename);
        p.set("Date", rfc2822(self.date));
        if let Some(v) = self.valid_until {
            p.set("Valid-Until", rfc2822(v));
        }
        p.set("Architectures", self.architectures.join(" "));
        p.set("Components", self.components.join(" "));
        p.set("Acquire-By-Hash", "yes");
        let list = |hash: &dyn Fn(&IndexFile) -> String| {
            self.files
                .iter()
                .map(|f| format!("\n {} {:>16} {}", hash(f), f.size, f.path))
                .collect::<String>()
        };
        p.set("SHA256", list(&|f| f.sha256.clone()));
        if self.files.iter().all(|f| f.sha512.is_some()) {
            p.set("SHA512", list(&|f| f.sha512.clone().unwrap_or_default()));
        }
        let mut out = String::new();
        p.write_to(&mut out);
        out
    }

    /// Parses a Release text; the error says which field is missing or malformed.
    pub fn parse(text: &str) -> Result<Release, String> {
        let paragraphs = deb822::parse(text)?;
        let p = paragraphs.first().ok_or("empty")?;
        let field = |name: &str| p.get(name).map(str::to_owned);
        let required = |name: &str| field(name).ok_or(format!("no {name} field"));
        let date = required("Date")?;
        let date = parse_date(&date).ok_or(format!("Date {date:?} is not an RFC 1123 date"))?;
        let valid_until = match field("Valid-Until") {
            Some(v) => {
                Some(parse_date(&v).ok_or(format!("Valid-Until {v:?} is not an RFC 1123 date"))?)
            }
            None => None,
        };
        let words = |name: &str| -> Vec<String> {
            field(name)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let sums = |name: &str| -> Result<Vec<(String, u64, String)>, String> {
            let mut out = Vec::new();
            for line in field(name).unwrap_or_default().lines().skip(1) {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let [hash, size, path] = parts[..] else {
                    return Err(format!("{name} line {line:?} is not `hash size path`"));
                };
                let size = size
                    .parse()
                    .map_err(|_| format!("{name} line {line:?}: size is not a number"))?;
                out.push((hash.to_owned(), size, path.to_owned()));
            }
            Ok(out)
        };
        let sha512 = sums("SHA512")?;
        let files = sums("SHA256")?
            .into_iter()
            .map(|(sha256, size, path)| IndexFile {
                sha512: sha512
                    .iter()
                    .find(|(_, s, p)| *p == path && *s == size)
                    .map(|(h, _, _)| h.clone()),
                path,
                size,
                sha256,
            })
            .collect();
        let suite = required("Suite")?;
        Ok(Release {
            origin: field("Origin").unwrap_or_default(),
            label: field("Label").unwrap_or_default(),
            codename: field("Codename").unwrap_or_else(|| suite.clone()),
            suite,
            date,
            valid_until,
            architectures: words("Architectures"),
            components: words("Components"),
            files,
        })
    }
}

/// The signed text of a clear-signed message (`InRelease`), dash-escaping undone; `None`
/// when `text` is not one.
pub fn cleartext(text: &str) -> Option<String> {
    let mut lines = text.lines();
    if lines.next()? != "-----BEGIN PGP SIGNED MESSAGE-----" {
        return None;
    }
    // Armor headers (`Hash: SHA512`) up to the first blank line.
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
    }
    let mut out = String::new();
    for line in lines {
        if line == "-----BEGIN PGP SIGNATURE-----" {
            return Some(out);
        }
        out.push_str(line.strip_prefix("- ").unwrap_or(line));
        out.push('\n');
    }
    None
}

/// Parses `Sun, 27 Dec 2026 08:33:14 +0000` (the weekday is optional; `UTC`, `GMT`, `Z`
/// and numeric offsets are understood) into Unix seconds.
pub fn parse_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let s = s.split_once(',').map_or(s, |(_, rest)| rest);
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [day, month, year, time, zone] = parts[..] else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    let offset: i64 = match zone {
        "UTC" | "GMT" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let t = days * 86_400 + (h * 3600 + m * 60 + sec) as i64 - offset;
    u64::try_from(t).ok()
}

/// Howard Hinnant's days-from-civil algorithm, the inverse of the one `render` uses.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_back_to_what_was_rendered() {
        for t in [0, 951_782_400, 1_798_360_394, 4_102_444_800] {
            assert_eq!(parse_date(&rfc2822(t)), Some(t), "{t}");
        }
        assert_eq!(
            parse_date("Sun, 27 Dec 2026 08:33:14 UTC"),
            Some(1_798_360_394)
        );
        assert_eq!(
            parse_date("27 Dec 2026 09:33:14 +0100"),
            Some(1_798_360_394)
        );
        assert_eq!(parse_date("Sun, 27 Foo 2026 08:33:14 +0000"), None);
        assert_eq!(parse_date("yesterday"), None);
    }

    fn sample() -> Release {
        Release {
            origin: "containerd-stack".into(),
            label: "containerd-stack".into(),
            suite: "stable".into(),
            codename: "stable".into(),
            date: 1_798_360_394,
            valid_until: Some(1_798_360_394 + 7 * 86_400),
            architectures: vec!["amd64".into(), "arm64".into()],
            components: vec!["main".into()],
            files: vec![IndexFile {
                path: "main/binary-amd64/Packages".into(),
                size: 1234,
                sha256: "a".repeat(64),
                sha512: Some("b".repeat(128)),
            }],
        }
    }

    #[test]
    fn renders_what_apt_needs_and_parses_back() {
        let r = sample();
        let text = r.render();
        assert!(text.starts_with("Origin: containerd-stack\nLabel: containerd-stack\nSuite: stable\nCodename: stable\nDate: Sun, 27 Dec 2026 08:33:14 +0000\nValid-Until: Sun, 03 Jan 2027 08:33:14 +0000\nArchitectures: amd64 arm64\nComponents: main\nAcquire-By-Hash: yes\nSHA256:\n"), "{text}");
        assert!(text.contains(&format!(
            "\nSHA256:\n {}             1234 main/binary-amd64/Packages\nSHA512:\n {} ",
            "a".repeat(64),
            "b".repeat(128)
        )));
        assert!(text.ends_with("main/binary-amd64/Packages\n"));
        assert_eq!(Release::parse(&text).unwrap(), r);
    }

    #[test]
    fn cleartext_undoes_dash_escaping() {
        let signed = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: stable\n- -----not armor\n-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n";
        assert_eq!(
            cleartext(signed).unwrap(),
            "Suite: stable\n-----not armor\n"
        );
        assert_eq!(cleartext("Suite: stable\n"), None);
    }

    #[test]
    fn a_release_without_date_is_refused_naming_the_field() {
        assert_eq!(
            Release::parse("Suite: stable\n").unwrap_err(),
            "no Date field"
        );
    }
}
