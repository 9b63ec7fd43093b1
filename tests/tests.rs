//! The integration tests, as one test binary (one link of reqwest, rustls and pgp instead
//! of one per file): the pipeline against a loopback HTTP mirror serving generated
//! releases in upstream's exact paths, a misbehaving network, hostile archives, `lock`,
//! the postinst's config editing against real `containerd config default` outputs,
//! signing and `verify`, the apt repository judged by the real gpgv and apt-get, the SBOM
//! judged by SPDX's validator, the `.changes` taken by reprepro and aptly, and the
//! `containerd-stack` command as a new user meets it.

mod archives;
mod build;
mod cli;
mod common;
mod config_gen;
mod faults;
mod lock;
mod repo;
mod repo_index;
mod repo_verify;
mod sbom;
mod upload;
mod verify;
