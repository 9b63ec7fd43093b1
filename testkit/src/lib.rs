//! Test support shared by the integration tests and `cargo xtask`: a loopback HTTP server
//! that serves a directory in upstream's exact paths, generated upstream releases (tiny ELF
//! programs for any architecture, packed the way each project packs them), and packages
//! and keys for repository tests.

pub mod mirror;
pub mod openpgp;
pub mod packages;
pub mod upstream;

pub use mirror::{Fault, Mirror};
pub use packages::{build_debs, repo_key, RepoKey};
pub use upstream::{elf_program, FakeRelease};
