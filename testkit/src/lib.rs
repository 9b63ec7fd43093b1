//! Test support shared by the integration tests and `cargo xtask`: a loopback HTTP server
//! that serves a directory in upstream's exact paths, and generated upstream releases
//! (tiny ELF programs for any architecture, packed the way each project packs them).

pub mod mirror;
pub mod openpgp;
pub mod upstream;

pub use mirror::{Fault, Mirror};
pub use upstream::{elf_program, FakeRelease};
