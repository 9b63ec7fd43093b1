//! Debconf templates: the questions a package asks at install time, which an administrator
//! answers ahead of time with `debconf-set-selections` (preseeding). They are read from a
//! package's `templates` control file when it is published, kept without their
//! translations in the suite's record, and shown on the index page with the line that
//! preseeds each one.

use super::deb822;

/// Question types that hold an answer; `note`, `text`, `title` and `error` only show
/// something, and preseeding them means nothing.
const ANSWERED: &[&str] = &["boolean", "string", "select", "multiselect", "password"];

/// The fields the page shows; translations (`Description-de.UTF-8`, …) are dropped.
const KEPT: &[&str] = &["Template", "Type", "Default", "Choices", "Description"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// `containerd-stack/sandbox_image`.
    pub name: String,
    /// `boolean`, `string`, `select`, …
    pub kind: String,
    pub default: Option<String>,
    pub choices: Option<String>,
    /// The first line of the description.
    pub synopsis: String,
    /// The rest of the description, one string per paragraph.
    pub extended: Vec<String>,
}

impl Question {
    /// The `debconf-set-selections` line that answers it for `owner` (the package), with
    /// its default as the answer shown.
    pub fn selection(&self, owner: &str) -> String {
        let value = match self.kind.as_str() {
            // A default password would be a secret printed on a web page.
            "password" => "",
            _ => self.default.as_deref().unwrap_or(""),
        };
        format!("{owner} {} {} {value}", self.name, self.kind)
            .trim_end()
            .to_owned()
    }

    /// The selection as a command a person can paste: `echo '…' | sudo debconf-set-selections`.
    pub fn command(&self, owner: &str) -> String {
        let line = self.selection(owner).replace('\'', r"'\''");
        format!("echo '{line}' | sudo debconf-set-selections")
    }
}

/// The questions of a templates file that take an answer, in the file's order.
pub fn parse(text: &str) -> Result<Vec<Question>, String> {
    let mut out = Vec::new();
    for p in deb822::parse(text)? {
        let name = p
            .get("Template")
            .ok_or("a template has no Template field")?
            .to_owned();
        let kind = p
            .get("Type")
            .ok_or(format!("template {name} has no Type field"))?
            .to_owned();
        if !ANSWERED.contains(&kind.as_str()) {
            continue;
        }
        let description = p.get("Description").unwrap_or("");
        let mut lines = description.lines();
        let synopsis = lines.next().unwrap_or("").trim().to_owned();
        let mut extended = vec![String::new()];
        for line in lines {
            let line = line.strip_prefix(' ').unwrap_or(line);
            if line.trim() == "." {
                extended.push(String::new());
            } else {
                let last = extended.last_mut().expect("never empty");
                if !last.is_empty() {
                    last.push(' ');
                }
                last.push_str(line.trim());
            }
        }
        extended.retain(|p| !p.is_empty());
        out.push(Question {
            name,
            kind,
            default: p.get("Default").map(str::to_owned),
            choices: p.get("Choices").map(str::to_owned),
            synopsis,
            extended,
        });
    }
    Ok(out)
}

/// The templates file without translations: what the suite's record keeps.
pub fn reduce(text: &str) -> Result<String, String> {
    parse(text)?;
    let paragraphs: Vec<deb822::Paragraph> = deb822::parse(text)?
        .into_iter()
        .map(|p| {
            let mut kept = deb822::Paragraph::new();
            for name in KEPT {
                if let Some(v) = p.get(name) {
                    kept.set(name, v);
                }
            }
            kept
        })
        .collect();
    Ok(deb822::render(&paragraphs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATES: &str = "Template: containerd-stack/systemd_cgroup\nType: boolean\nDefault: true\nDescription: Use the systemd cgroup driver for containers?\n The kubelet and containerd must use the same cgroup driver.\n .\n This sets SystemdCgroup.\nDescription-de.UTF-8: Den systemd-Treiber verwenden?\n Übersetzt.\n\nTemplate: containerd-stack/intro\nType: note\nDescription: Read this\n\nTemplate: containerd-stack/sandbox_image\nType: string\nDefault: registry.k8s.io/pause:3.10.2\nDescription: Sandbox image for Kubernetes pods:\n";

    #[test]
    fn questions_that_take_an_answer_are_read_with_their_description() {
        let qs = parse(TEMPLATES).unwrap();
        assert_eq!(qs.len(), 2, "the note is not a setting");
        assert_eq!(qs[0].name, "containerd-stack/systemd_cgroup");
        assert_eq!(
            qs[0].synopsis,
            "Use the systemd cgroup driver for containers?"
        );
        assert_eq!(
            qs[0].extended,
            [
                "The kubelet and containerd must use the same cgroup driver.",
                "This sets SystemdCgroup."
            ]
        );
        assert_eq!(
            qs[1].command("containerd-stack"),
            "echo 'containerd-stack containerd-stack/sandbox_image string registry.k8s.io/pause:3.10.2' | sudo debconf-set-selections"
        );
    }

    #[test]
    fn reduced_templates_keep_every_question_and_drop_translations() {
        let reduced = reduce(TEMPLATES).unwrap();
        assert!(!reduced.contains("Übersetzt"), "{reduced}");
        assert_eq!(parse(&reduced).unwrap(), parse(TEMPLATES).unwrap());
    }

    #[test]
    fn quotes_and_passwords_never_break_the_command() {
        let q = Question {
            name: "p/motd".into(),
            kind: "string".into(),
            default: Some("it's here".into()),
            choices: None,
            synopsis: String::new(),
            extended: Vec::new(),
        };
        assert_eq!(
            q.command("p"),
            r"echo 'p p/motd string it'\''s here' | sudo debconf-set-selections"
        );
        let secret = Question {
            kind: "password".into(),
            default: Some("hunter2".into()),
            ..q
        };
        assert_eq!(secret.selection("p"), "p p/motd password");
        assert_eq!(
            parse("Template: x\n").unwrap_err(),
            "template x has no Type field"
        );
    }
}
