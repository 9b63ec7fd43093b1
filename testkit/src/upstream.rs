//! Generated upstream releases in upstream's exact names and paths, with tiny but real ELF
//! headers, so the whole pipeline — ELF checks included — runs in milliseconds.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use containerd_stack::artifact::Artifact;
use containerd_stack::stack::{Component, ComponentKind, Sha256};
use containerd_stack::DebArch;
use sha2::Digest;

/// The mtime of every generated archive entry.
pub const ENTRY_MTIME: u64 = 1_700_000_000;

pub const VERSIONS: [(ComponentKind, &str); 4] = [
    (ComponentKind::Containerd, "2.3.4"),
    (ComponentKind::Runc, "1.4.3"),
    (ComponentKind::CniPlugins, "1.9.1"),
    (ComponentKind::Crictl, "1.36.0"),
];

pub const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "loopback", "portmap"];

/// A minimal static ELF64 executable for `arch`; `tag` makes each program's bytes unique.
pub fn elf_program(arch: DebArch, tag: &str) -> Vec<u8> {
    let id = arch.elf_ident();
    let le = id.little_endian;
    let u16b = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let u32b = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let u64b = |v: u64| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let mut b = vec![0x7f, b'E', b'L', b'F', 2, if le { 1 } else { 2 }, 1, 0];
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&u16b(2)); // ET_EXEC
    b.extend_from_slice(&u16b(id.machine));
    b.extend_from_slice(&u32b(1));
    b.extend_from_slice(&u64b(0x40_0000)); // entry
    b.extend_from_slice(&u64b(0)); // phoff
    b.extend_from_slice(&u64b(0)); // shoff
    b.extend_from_slice(&u32b(0)); // flags
    b.extend_from_slice(&u16b(64));
    b.extend_from_slice(&u16b(56));
    b.extend_from_slice(&u16b(0));
    b.extend_from_slice(&u16b(64));
    b.extend_from_slice(&u16b(0));
    b.extend_from_slice(&u16b(0));
    assert_eq!(b.len(), 64);
    b.extend_from_slice(format!("\n{tag} for {arch}\n").as_bytes());
    b
}

/// containerd's release tarball as upstream lays it out, with `program(name)` as the bytes
/// of each program in `bin/`.
pub fn containerd_tar_gz(program: impl Fn(&str) -> Vec<u8>) -> Vec<u8> {
    tar_gz(&[
        ("bin/", 0o755, vec![]),
        ("bin/containerd", 0o755, program("containerd")),
        (
            "bin/containerd-shim-runc-v2",
            0o755,
            program("containerd-shim-runc-v2"),
        ),
        ("bin/containerd-stress", 0o755, program("containerd-stress")),
        ("bin/ctr", 0o755, program("ctr")),
    ])
}

/// A gzip'd tar of `(name, mode, bytes)` entries, names written exactly as given.
pub fn tar_gz(entries: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, mode, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        let dir = name.ends_with('/');
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(*mode);
        h.set_size(bytes.len() as u64);
        h.set_mtime(ENTRY_MTIME);
        raw_name(&mut h, name);
        tar.append(&h, &bytes[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Writes `name` into the header without the tar crate's path checks, so tests can build
/// the hostile archives they need.
pub fn raw_name(h: &mut tar::Header, name: &str) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A set of release assets written under `root` in GitHub's download paths.
#[derive(Clone)]
pub struct FakeRelease {
    pub root: PathBuf,
    pub versions: BTreeMap<ComponentKind, String>,
    pub sha256: BTreeMap<(ComponentKind, DebArch), String>,
}

impl FakeRelease {
    /// All four components for `arches`, at the versions of [`VERSIONS`].
    pub fn write(root: &Path, arches: &[DebArch]) -> FakeRelease {
        let mut r = FakeRelease {
            root: root.to_owned(),
            versions: VERSIONS.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            sha256: BTreeMap::new(),
        };
        for &arch in arches {
            for kind in ComponentKind::ALL {
                let bytes = r.asset_bytes(kind, arch);
                r.put(kind, arch, &bytes);
            }
        }
        r
    }

    /// The asset's bytes as upstream packs it.
    pub fn asset_bytes(&self, kind: ComponentKind, arch: DebArch) -> Vec<u8> {
        let p = |name: &str| elf_program(arch, name);
        match kind {
            ComponentKind::Containerd => containerd_tar_gz(p),
            ComponentKind::Runc => p("runc"),
            ComponentKind::CniPlugins => {
                let mut e = vec![("./", 0o755, vec![])];
                let names: Vec<String> = CNI_PLUGINS.iter().map(|n| format!("./{n}")).collect();
                for (n, name) in names.iter().zip(CNI_PLUGINS) {
                    e.push((n.as_str(), 0o755, p(name)));
                }
                e.push(("./LICENSE", 0o644, b"Apache License 2.0\n".to_vec()));
                e.push(("./README.md", 0o644, b"# plugins\n".to_vec()));
                tar_gz(&e)
            }
            ComponentKind::Crictl => tar_gz(&[("crictl", 0o755, p("crictl"))]),
        }
    }

    /// Writes `bytes` as the asset of `kind` for `arch` (replacing any), records its hash,
    /// and writes upstream's checksum file beside it.
    pub fn put(&mut self, kind: ComponentKind, arch: DebArch, bytes: &[u8]) -> PathBuf {
        let a = self.artifact(kind, arch, "0".repeat(64));
        let path = self.root.join(&a.path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        let hash = sha256_hex(bytes);
        let line = format!("{hash}  {}\n", a.file_name);
        match kind {
            ComponentKind::Containerd => {
                fs::write(format!("{}.sha256sum", path.display()), &line).unwrap()
            }
            ComponentKind::CniPlugins => {
                fs::write(format!("{}.sha256", path.display()), &line).unwrap()
            }
            ComponentKind::Crictl => {
                fs::write(format!("{}.sha256", path.display()), format!("{hash}\n")).unwrap()
            }
            ComponentKind::Runc => {
                let sums = path.parent().unwrap().join("runc.sha256sum");
                let mut f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(sums)
                    .unwrap();
                f.write_all(line.as_bytes()).unwrap();
            }
        }
        self.sha256.insert((kind, arch), hash);
        path
    }

    /// Clear-signs `runc.sha256sum` with `key` and publishes `keyring` where runc keeps it
    /// (the repository root at the release tag).
    pub fn sign_runc_sums(&self, key: &pgp::composed::SignedSecretKey, keyring: &str) {
        let v = &self.versions[&ComponentKind::Runc];
        let dir = self
            .root
            .join(format!("opencontainers/runc/releases/download/v{v}"));
        let sums = dir.join("runc.sha256sum");
        let text = fs::read_to_string(&sums).unwrap();
        fs::write(&sums, crate::openpgp::clearsign(key, &text)).unwrap();
        let keyring_path = self.root.join(containerd_stack::lock::keyring_path(
            ComponentKind::Runc,
            v,
            "runc.keyring",
        ));
        fs::create_dir_all(keyring_path.parent().unwrap()).unwrap();
        fs::write(keyring_path, keyring).unwrap();
    }

    pub fn artifact(&self, kind: ComponentKind, arch: DebArch, sha: String) -> Artifact {
        let c = Component {
            kind,
            version: self.versions[&kind].clone(),
            sha256: BTreeMap::from([(arch, Sha256::parse(&sha).unwrap())]),
        };
        Artifact::for_component(&c, arch).unwrap()
    }

    pub fn path_of(&self, kind: ComponentKind, arch: DebArch) -> PathBuf {
        self.root
            .join(self.artifact(kind, arch, "0".repeat(64)).path)
    }

    /// A stack.toml pinning every asset written, for the components in `kinds`.
    pub fn stack_toml(&self, kinds: &[ComponentKind]) -> String {
        let mut s = String::from(
            "[package]\nname = \"containerd-stack\"\nrevision = \"1\"\nmaintainer = \"containerd-stack maintainers <maintainers@example.org>\"\n",
        );
        for kind in kinds {
            s.push_str(&format!(
                "\n[components.{}]\nversion = \"{}\"\n[components.{}.sha256]\n",
                kind.key(),
                self.versions[kind],
                kind.key()
            ));
            for ((k, arch), hash) in &self.sha256 {
                if k == kind {
                    s.push_str(&format!("{arch} = \"{hash}\"\n"));
                }
            }
        }
        s.push_str("\n[settings]\nsystemd_cgroup = true\nsandbox_image = \"registry.k8s.io/pause:3.10.2\"\ncni_bin_dir = \"/opt/cni/bin\"\n");
        s
    }
}
