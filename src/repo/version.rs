//! Debian version ordering, as dpkg defines it (deb-version(7)): `[epoch:]upstream[-revision]`,
//! compared epoch first, then upstream, then revision, each part in alternating runs of
//! non-digits (letters before other characters, `~` before everything, even the end) and
//! numbers. The index is sorted by it and `--keep` drops the lowest versions by it, so it
//! must agree with apt's choice of candidate exactly.

use std::cmp::Ordering;

/// Compares two Debian versions the way `dpkg --compare-versions` does.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| compare_part(ra.as_bytes(), rb.as_bytes()))
}

/// Checks `version` is one dpkg accepts, saying what is wrong when not.
pub fn check_version(version: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("version {version:?}: {why}"));
    let rest = match version.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => rest,
        Some(_) => return bad("the epoch before ':' must be a number"),
        None => version,
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, Some(r)),
        None => (rest, None),
    };
    if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return bad("must start with a digit");
    }
    if !upstream
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".+~-:".contains(c))
    {
        return bad("only letters, digits and . + ~ - : are allowed");
    }
    if let Some(r) = revision {
        if r.is_empty()
            || !r
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.~".contains(c))
        {
            return bad("the revision after the last '-' must be letters, digits, + . ~");
        }
    }
    Ok(())
}

/// `(epoch, upstream, revision)`; a missing epoch is 0 and a missing revision is empty,
/// which dpkg orders the same as `0`.
fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => (e.parse().unwrap_or(0), rest),
        None => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// dpkg's weight of a non-digit character; 0 for the end of the string.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn compare_part(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let at = |s: &[u8], k: usize| s.get(k).copied();
    let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        while (at(a, i).is_some() && !digit(at(a, i))) || (at(b, j).is_some() && !digit(at(b, j))) {
            let (ac, bc) = (order(at(a, i)), order(at(b, j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while at(a, i) == Some(b'0') {
            i += 1;
        }
        while at(b, j) == Some(b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(at(a, i)) && digit(at(b, j)) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(at(a, i)) {
            return Ordering::Greater;
        }
        if digit(at(b, j)) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn agrees_with_dpkg_on_known_pairs() {
        // Pairs as `dpkg --compare-versions` orders them.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("1.0-1", "1.0-2", Less),
            ("2.3.4-1", "2.3.4-10", Less),
            ("2.3.4-9", "2.3.4-10", Less),
            ("2.3.10-1", "2.3.4-1", Greater),
            ("1.0~rc1-1", "1.0-1", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1:0.1", "2.0", Greater),
            ("0:2.0", "2.0", Equal),
            ("1.001", "1.1", Equal),
            ("1.2.3", "1.2.3.0", Less),
            ("2.3.4-1", "2.3.4-1+deb12u1", Less),
            ("2.3.4-1~bpo12+1", "2.3.4-1", Less),
            ("10", "9", Greater),
            ("1.0-1", "1.0.1-1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn sorting_gives_dpkg_order() {
        let mut v = vec!["2.3.4-10", "2.3.4-2", "1:1.0-1", "2.3.4~rc1-1", "2.3.4-1"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            ["2.3.4~rc1-1", "2.3.4-1", "2.3.4-2", "2.3.4-10", "1:1.0-1"]
        );
    }

    #[test]
    fn malformed_versions_are_named() {
        assert!(check_version("2.3.4-1").is_ok());
        assert!(check_version("1:2.3.4-1~bpo12+1").is_ok());
        assert!(check_version("2.3.4").is_ok());
        for bad in ["", "a1.0", "x:1.0", "1.0 -1", "1.0-", "1.0-r_1"] {
            let e = check_version(bad).unwrap_err();
            assert!(e.starts_with(&format!("version {bad:?}:")), "{e}");
        }
    }
}
