//! containerd-stack turns pinned upstream releases of containerd, runc, the CNI plugins and
//! crictl into reproducible Debian packages. The modules follow the pipeline:
//! [`stack`] → [`fetch`] → [`unpack`] → [`elf`] → [`layout`] → [`render`] → [`deb`], driven
//! by [`build`].

pub mod arch;
pub mod artifact;
pub mod atomic;
pub mod build;
pub mod cache;
pub mod component;
mod context;
pub mod deb;
pub mod elf;
pub mod error;
pub mod fetch;
pub mod hash;
pub mod layout;
pub mod listener;
pub mod lock;
pub mod render;
pub mod repo;
pub mod sbom;
pub mod sign;
pub mod stack;
pub mod unpack;
pub mod upload;
pub mod verify;

pub use arch::DebArch;
pub use build::{build, build_upload, BuildOptions, Built, BuiltDeb};
pub use error::{Error, Result};
pub use stack::Stack;
