//! Debian's archive, read for one suite and architecture without touching this machine's
//! apt: apt-get runs with a sources list, package lists, cache and dpkg status of its own
//! under `target/apt/<suite>-<arch>/` (the `Dir::…` options below), so the machine's lists,
//! pins and dpkg architectures stay as they were. The archive's address is the one this
//! machine's own sources use for its Debian release (Debian's own on other systems). [`Archive::download`] fetches one
//! exact version of a package and keeps it in a directory of the caller's; a version that
//! is gone from the suite is an error naming it and what the suite has now.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use containerd_stack::DebArch;

use crate::process::{describe, last_lines, stdout, text};
use crate::repo_root;
use crate::rootfs::Suite;

/// The keyring Debian's archive is signed with (package debian-archive-keyring); it also
/// holds the keys newer suites are signed with.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One suite of Debian's archive for one architecture, with apt state of its own.
pub struct Archive {
    suite: Suite,
    arch: DebArch,
    dir: PathBuf,
    updated: bool,
}

impl Archive {
    /// The archive of `suite` for `arch`, its apt state in `target/apt/<suite>-<arch>/`.
    /// Nothing is read or downloaded before a package is asked for that is not cached.
    pub fn open(suite: Suite, arch: DebArch) -> Archive {
        let dir = repo_root()
            .join("target/apt")
            .join(format!("{suite}-{arch}"));
        Archive {
            suite,
            arch,
            dir,
            updated: false,
        }
    }

    /// apt-get (or apt-cache) with this archive's state in place of the machine's.
    fn apt(&self, program: &str) -> Command {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        let mut cmd = Command::new(program);
        for (key, value) in [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", d("sources.list.d")),
            ("Dir::Etc::Preferences", d("preferences")),
            ("Dir::Etc::PreferencesParts", d("preferences.d")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::State::status", d("status")),
            ("Dir::Cache", d("cache")),
            ("APT::Architecture", self.arch.to_string()),
            ("APT::Architectures", self.arch.to_string()),
            // apt's unprivileged download user cannot write into root-only directories.
            ("APT::Sandbox::User", "root".to_owned()),
        ] {
            cmd.arg("-o").arg(format!("{key}={value}"));
        }
        cmd.arg("-q").stdin(Stdio::null());
        cmd
    }

    /// Writes a sources list naming this machine's Debian archive and the suite, and an
    /// empty dpkg status, then fetches the suite's package lists; once per `Archive`.
    fn update(&mut self) -> Result<()> {
        if self.updated {
            return Ok(());
        }
        ensure!(
            Path::new(KEYRING).is_file(),
            "{KEYRING} is missing: apt-get install debian-archive-keyring"
        );
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            let d = self.dir.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let uri = machine_archive()?;
        // Only the package lists: no translations, Contents or DEP-11 metadata.
        let sources = format!(
            "deb [signed-by={KEYRING} target=Packages] {uri} {} main\n",
            self.suite.codename()
        );
        write(&self.dir.join("sources.list"), &sources)?;
        // No package is installed in this apt's world.
        write(&self.dir.join("status"), "")?;
        let mut cmd = self.apt("apt-get");
        cmd.arg("update");
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", describe(&cmd)))?;
        let said = text(&out);
        // apt-get update exits 0 on some fetch failures and says so with W: or E: lines.
        let complaints: Vec<&str> = said
            .lines()
            .filter(|l| l.starts_with("E:") || l.starts_with("W:") || l.starts_with("Err:"))
            .collect();
        if !out.status.success() || !complaints.is_empty() {
            bail!(
                "apt-get update of Debian {} ({}) failed: {}",
                self.suite,
                self.dir.join("sources.list").display(),
                match complaints.is_empty() {
                    true => last_lines(&said, 3),
                    false => complaints.join(" | "),
                }
            );
        }
        self.updated = true;
        Ok(())
    }

    /// `package` at exactly `version`, as `<dir>/<package>_<version>_<arch>.deb`: from `dir`
    /// when it is there, else downloaded from the suite (Architecture: all packages too).
    pub fn download(&mut self, package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            if is_deb_of(&path, package, version)? {
                return Ok(path);
            }
        }
        self.update()?;
        let tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(dir)
            .with_context(|| format!("cannot create a temporary directory in {}", dir.display()))?;
        let mut cmd = self.apt("apt-get");
        cmd.arg("download")
            .arg(format!("{package}={version}"))
            .current_dir(tmp.path());
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", describe(&cmd)))?;
        if !out.status.success() {
            let available = self.versions(package).unwrap_or_default();
            bail!(
                "Debian {} has no {package} {version} for {} any more (it has {}): update the pin{}",
                self.suite,
                self.arch,
                match available.is_empty() {
                    true => "no version of it".to_owned(),
                    false => available.join(", "),
                },
                match last_lines(&text(&out), 1) {
                    l if l.is_empty() => String::new(),
                    l => format!(" (apt-get: {l})"),
                }
            );
        }
        let mut found = Vec::new();
        for entry in fs::read_dir(tmp.path())? {
            found.push(entry?.path());
        }
        let [deb] = <[PathBuf; 1]>::try_from(found).map_err(|found| {
            anyhow::anyhow!(
                "apt-get download {package}={version} left {} files in {}, expected one .deb",
                found.len(),
                tmp.path().display()
            )
        })?;
        ensure!(
            is_deb_of(&deb, package, version)?,
            "apt-get download {package}={version} wrote {}, which is not that package",
            deb.display()
        );
        let name = deb
            .file_name()
            .context("a downloaded file has a name")?
            .to_owned();
        let cached = dir.join(name);
        fs::rename(&deb, &cached)
            .with_context(|| format!("cannot move {} into {}", deb.display(), dir.display()))?;
        Ok(cached)
    }

    /// The versions of `package` the suite has now.
    fn versions(&self, package: &str) -> Result<Vec<String>> {
        let mut cmd = self.apt("apt-cache");
        cmd.arg("madison").arg(package);
        let listed = stdout(&mut cmd)?;
        Ok(listed
            .lines()
            .filter_map(|l| l.split('|').nth(1))
            .map(|v| v.trim().to_owned())
            .collect())
    }
}

/// Whether `path` is a .deb of `package` at `version`, by its control fields.
fn is_deb_of(path: &Path, package: &str, version: &str) -> Result<bool> {
    if path.extension().is_none_or(|e| e != "deb") {
        return Ok(false);
    }
    let fields = stdout(
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(path)
            .args(["Package", "Version"]),
    )?;
    Ok(fields.contains(&format!("Package: {package}\n"))
        && fields.contains(&format!("Version: {version}\n")))
}

/// Debian's own address for its archive, where this machine's sources name none (an
/// Ubuntu machine, say), as mmdebstrap uses.
const DEBIAN_ARCHIVE: &str = "http://deb.debian.org/debian/";

/// The address of Debian's archive in this machine's apt sources: the entry for its own
/// release (not -updates, -security or -backports), so that a Debian machine behind a
/// mirror of its own reads through it; Debian's own address on other machines.
fn machine_archive() -> Result<String> {
    let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |name: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_matches('"').to_owned())
    };
    if field("ID=").as_deref() != Some("debian") {
        return Ok(DEBIAN_ARCHIVE.to_owned());
    }
    let codename = field("VERSION_CODENAME=");
    let listed = stdout(Command::new("apt-get").args([
        "indextargets",
        "--format",
        "$(REPO_URI) $(RELEASE)",
        "Identifier: Packages",
    ]))?;
    archive_uri(&listed, codename.as_deref()).with_context(|| {
        format!(
            "this Debian machine's apt sources name no archive for its release {}: `apt-get indextargets` lists {}",
            codename.as_deref().unwrap_or("(no VERSION_CODENAME in /etc/os-release)"),
            match listed.trim() {
                "" => "nothing".to_owned(),
                l => l.replace('\n', ", "),
            }
        )
    })
}

/// From `apt-get indextargets` lines `URI RELEASE`: the URI of `codename`'s own entry.
fn archive_uri(listed: &str, codename: Option<&str>) -> Option<String> {
    let codename = codename?;
    listed.lines().find_map(|l| {
        let (uri, release) = l.trim().split_once(' ')?;
        (release == codename).then(|| uri.to_owned())
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_the_entry_of_the_machine_release() {
        let listed = "http://deb.debian.org/debian-security/ bookworm-security\n\
                      http://mirror.example/debian/ bookworm-updates\n\
                      http://mirror.example/debian/ bookworm\n";
        assert_eq!(
            archive_uri(listed, Some("bookworm")).as_deref(),
            Some("http://mirror.example/debian/")
        );
        assert_eq!(archive_uri(listed, Some("trixie")), None);
        assert_eq!(archive_uri(listed, None), None);
    }
}
