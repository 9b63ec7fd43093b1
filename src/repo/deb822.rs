//! deb822 paragraphs (Packages stanzas, Release files, `.sources`) with their fields kept
//! in the order they were written, so a stanza read back from an index is written out byte
//! for byte as it was: an index that did not change keeps its hash, and so its by-hash
//! copies and every client's cache stay valid.

/// One paragraph. A value holds everything after `Name:`, its first line trimmed and its
/// continuation lines (each starting with a space or tab) appended after `\n`, untouched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    pub fn new() -> Paragraph {
        Paragraph::default()
    }

    /// The value of `name`; field names compare case-insensitively, as deb822 says.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the value of `name`, or appends the field.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .fields
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(field) => field.1 = value,
            None => self.fields.push((name.to_owned(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Moves `name` to the front (apt reads `Package:` first by convention).
    pub fn move_first(&mut self, name: &str) {
        if let Some(i) = self
            .fields
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            let f = self.fields.remove(i);
            self.fields.insert(0, f);
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Appends the paragraph's lines (without the blank separator line) to `out`.
    pub fn write_to(&self, out: &mut String) {
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push(':');
            // A value whose first line is empty (`Conffiles:` + lines) gets no space.
            if !v.starts_with('\n') {
                out.push(' ');
            }
            out.push_str(v);
            out.push('\n');
        }
    }
}

/// Parses paragraphs separated by blank lines. `#` comment lines are skipped. The error
/// names the 1-based line.
pub fn parse(text: &str) -> Result<Vec<Paragraph>, String> {
    let mut out = Vec::new();
    let mut current = Paragraph::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            match current.fields.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line.trim_end());
                }
                None => return Err(format!("line {}: continuation line without a field", n + 1)),
            }
        } else {
            let Some((k, v)) = line.split_once(':') else {
                return Err(format!(
                    "line {}: expected `Field: value`, found {line:?}",
                    n + 1
                ));
            };
            if k.is_empty() || k.contains(char::is_whitespace) {
                return Err(format!("line {}: {k:?} is not a field name", n + 1));
            }
            if current.get(k).is_some() {
                return Err(format!("line {}: field {k} appears twice", n + 1));
            }
            current.fields.push((k.to_owned(), v.trim().to_owned()));
        }
    }
    if !current.fields.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Paragraphs written one after another, separated by blank lines.
pub fn render(paragraphs: &[Paragraph]) -> String {
    let mut out = String::new();
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        p.write_to(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_byte_for_byte() {
        let text = "Package: containerd-stack\nVersion: 2.3.4-1\nConffiles:\n /etc/crictl.yaml\nDescription: containerd, runc\n Extended text.\n .\n More.\n\nPackage: b\nVersion: 1\n";
        let ps = parse(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("version"), Some("2.3.4-1"));
        assert_eq!(ps[0].get("Conffiles"), Some("\n /etc/crictl.yaml"));
        assert_eq!(render(&ps), text);
    }

    #[test]
    fn set_replaces_in_place_and_appends_new_fields() {
        let mut p = parse("Version: 1\nPackage: a\n").unwrap().remove(0);
        p.set("version", "2");
        p.set("Size", "10");
        p.move_first("Package");
        let mut s = String::new();
        p.write_to(&mut s);
        assert_eq!(s, "Package: a\nVersion: 2\nSize: 10\n");
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        assert_eq!(
            parse("Package: a\nnonsense\n").unwrap_err(),
            "line 2: expected `Field: value`, found \"nonsense\""
        );
        assert_eq!(
            parse(" orphan\n").unwrap_err(),
            "line 1: continuation line without a field"
        );
        assert_eq!(
            parse("A: 1\nA: 2\n").unwrap_err(),
            "line 2: field A appears twice"
        );
    }
}
