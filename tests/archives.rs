//! Hostile release archives: every trick is refused with an error naming the archive and
//! the entry, and nothing is ever written outside the staging directory.

use std::path::Path;

use containerd_stack::component::{Pick, CONTAINERD_PROGRAMS};
use containerd_stack::unpack::{unpack_tar_gz, StagedProgram};
use tar::{EntryType, Header};
use tempfile::TempDir;
use testkit::upstream::raw_name;

enum E<'a> {
    File(&'a [u8], &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Special(&'a str, EntryType),
    /// A file whose header claims `size` bytes of zeros.
    Sized(&'a str, u64),
}

fn archive(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for e in entries {
        let mut h = Header::new_gnu();
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        match e {
            E::File(name, data) => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(data.len() as u64);
                let field = &mut h.as_old_mut().name;
                field.fill(0);
                field[..name.len()].copy_from_slice(name);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::Dir(name) => {
                h.set_entry_type(EntryType::Directory);
                h.set_size(0);
                raw_name(&mut h, name);
                b.append(&h, &[][..]).unwrap();
            }
            E::Symlink(name, target) | E::Hardlink(name, target) => {
                h.set_entry_type(if matches!(e, E::Symlink(..)) {
                    EntryType::Symlink
                } else {
                    EntryType::Link
                });
                h.set_size(0);
                let field = &mut h.as_old_mut().linkname;
                field.fill(0);
                field[..target.len()].copy_from_slice(target.as_bytes());
                raw_name(&mut h, name);
                b.append(&h, &[][..]).unwrap();
            }
            E::Special(name, kind) => {
                h.set_entry_type(*kind);
                h.set_size(0);
                raw_name(&mut h, name);
                b.append(&h, &[][..]).unwrap();
            }
            E::Sized(name, size) => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(*size);
                raw_name(&mut h, name);
                b.append(&h, std::io::Read::take(std::io::repeat(0), *size))
                    .unwrap();
            }
        }
    }
    b.into_inner().unwrap().finish().unwrap()
}

const NAME: &str = "containerd-2.3.4-linux-amd64.tar.gz";
const OK: &[u8] = b"\x7fELF program";

fn good_files() -> Vec<E<'static>> {
    vec![
        E::Dir("bin/"),
        E::File(b"bin/containerd", OK),
        E::File(b"bin/containerd-shim-runc-v2", OK),
        E::File(b"bin/ctr", OK),
    ]
}

struct Run {
    dir: TempDir,
}

impl Run {
    fn new() -> Run {
        Run {
            dir: TempDir::new().unwrap(),
        }
    }

    fn staging(&self) -> std::path::PathBuf {
        self.dir.path().join("work/staging")
    }

    fn unpack(&self, entries: &[E], max: u64) -> Result<Vec<StagedProgram>, String> {
        let bytes = archive(entries);
        unpack_tar_gz(
            &bytes[..],
            NAME,
            &Pick::Named(CONTAINERD_PROGRAMS),
            &self.staging(),
            max,
        )
        .map_err(|e| e.to_string())
    }

    /// Nothing may appear anywhere but inside the staging directory.
    fn assert_contained(&self) {
        let mut outside = Vec::new();
        for e in walkdir(self.dir.path()) {
            if !e.starts_with(self.staging()) && e != self.dir.path().join("work") {
                outside.push(e);
            }
        }
        assert!(outside.is_empty(), "written outside staging: {outside:?}");
    }

    fn err(&self, mut entries: Vec<E>, entry: &str, message: &str) {
        entries.splice(0..0, good_files().into_iter().take(2));
        let err = self.unpack(&entries, 1 << 30).unwrap_err();
        assert!(
            err.starts_with(&format!("{NAME}: entry {entry}: ")),
            "error does not name {entry}: {err}"
        );
        assert!(err.contains(message), "{err}");
        assert!(!err.contains('\n'));
        self.assert_contained();
    }
}

fn walkdir(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walkdir(&e.path()));
            }
        }
    }
    out
}

#[test]
fn a_good_archive_stages_exactly_the_shipped_programs() {
    let r = Run::new();
    let mut entries = good_files();
    entries.push(E::File(b"bin/containerd-stress", OK));
    entries.push(E::File(
        b"README.md",
        b"extra files are checked, then ignored",
    ));
    let staged = r.unpack(&entries, 1 << 30).unwrap();
    let names: Vec<_> = staged.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["containerd", "containerd-shim-runc-v2", "ctr"]);
    assert!(!r.staging().join("bin/containerd-stress").exists());
    assert!(!r.staging().join("README.md").exists());
    r.assert_contained();
}

#[test]
fn dot_dot_and_absolute_paths_are_refused() {
    Run::new().err(vec![E::File(b"../evil", b"x")], "../evil", "climbs out");
    Run::new().err(
        vec![E::File(b"bin/../../evil", b"x")],
        "bin/../../evil",
        "climbs out",
    );
    Run::new().err(vec![E::File(b"/etc/evil", b"x")], "/etc/evil", "absolute");
}

#[test]
fn a_symlink_out_followed_by_a_file_through_it_writes_nothing_outside() {
    let r = Run::new();
    r.err(
        vec![
            E::Symlink("escape", "../../.."),
            E::File(b"escape/evil", b"x"),
        ],
        "escape",
        "points outside the archive",
    );
    assert!(!r.dir.path().join("evil").exists());
    let r = Run::new();
    r.err(
        vec![E::Symlink("bin2", "/etc"), E::File(b"bin2/passwd", b"x")],
        "bin2",
        "points outside",
    );
}

#[test]
fn links_inside_are_not_followed_and_a_linked_program_is_refused() {
    let r = Run::new();
    let mut entries = good_files();
    entries.push(E::Symlink("lib", "bin"));
    assert!(r.unpack(&entries, 1 << 30).is_ok());
    assert!(!r.staging().join("lib").exists(), "a link was created");
    let r = Run::new();
    r.err(
        vec![E::Symlink("bin/ctr", "containerd")],
        "bin/ctr",
        "expected a regular file, found a link",
    );
}

#[test]
fn hardlinks_to_outside_are_refused() {
    Run::new().err(
        vec![E::Hardlink("bin/x", "../../etc/shadow")],
        "bin/x",
        "points outside",
    );
    Run::new().err(
        vec![E::Hardlink("bin/x", "/etc/shadow")],
        "bin/x",
        "points outside",
    );
}

#[test]
fn device_nodes_and_fifos_are_refused() {
    Run::new().err(
        vec![E::Special("dev/sda", EntryType::Block)],
        "dev/sda",
        "device nodes and fifos",
    );
    Run::new().err(
        vec![E::Special("dev/null", EntryType::Char)],
        "dev/null",
        "device nodes and fifos",
    );
    Run::new().err(
        vec![E::Special("pipe", EntryType::Fifo)],
        "pipe",
        "device nodes and fifos",
    );
}

#[test]
fn duplicate_names_are_refused() {
    Run::new().err(
        vec![E::File(b"./bin/containerd", b"second")],
        "./bin/containerd",
        "appears twice",
    );
}

#[test]
fn names_that_are_not_utf8_are_refused() {
    let r = Run::new();
    let err = r
        .unpack(&[E::File(b"bin/\xff\xfe", b"x")], 1 << 30)
        .unwrap_err();
    assert!(err.starts_with(&format!("{NAME}: entry bin/")), "{err}");
    assert!(err.contains("not valid UTF-8"), "{err}");
    r.assert_contained();
}

#[test]
fn a_decompression_bomb_is_capped() {
    let r = Run::new();
    let mut entries = good_files();
    entries.push(E::Sized("zeros", 8 << 20));
    let err = r.unpack(&entries, 4 << 20).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{NAME}: entry zeros: archive unpacks to more than {} bytes; refusing it",
            4 << 20
        )
    );
    r.assert_contained();
}

#[test]
fn a_missing_program_is_named() {
    let r = Run::new();
    let err = r.unpack(&good_files()[..3], 1 << 30).unwrap_err();
    assert_eq!(
        err,
        format!("{NAME}: entry bin/ctr: expected program is missing from the archive")
    );
}

#[test]
fn garbage_instead_of_an_archive_is_one_line() {
    let r = Run::new();
    let err = unpack_tar_gz(
        &b"<html>rate limited</html>"[..],
        NAME,
        &Pick::Named(CONTAINERD_PROGRAMS),
        &r.staging(),
        1 << 20,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!("{NAME}: entry (stream): not a readable tar.gz")),
        "{err}"
    );
    assert!(!err.contains('\n'));
}
