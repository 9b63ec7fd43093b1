//! The integration tests, as one test binary (one link of reqwest, rustls and pgp instead
//! of one per file): the pipeline against a loopback HTTP mirror serving generated
//! releases in upstream's exact paths, a misbehaving network, hostile archives, `lock`,
//! the postinst's config editing against real `containerd config default` outputs,
//! signing and `verify`, the apt repository judged by the real gpgv and apt-get, the SBOM
//! judged by SPDX's validator, and the `.changes` taken by reprepro and aptly.

mod archives;
mod build;
mod config_gen;
mod faults;
mod lock;
mod repo;
mod sbom;
mod upload;
mod verify;
