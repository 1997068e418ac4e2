//! [`NodeError`]: why a node could not start or an operation on it failed.

use crate::config::ConfigError;
use crate::registry::RegistryError;
use crate::transport::{Refusal, TransportError};
use crate::types::GroupName;
use std::path::PathBuf;

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The node already has an instance in this group.
    #[error("this node already has an instance in group {0:?}")]
    AlreadyJoined(GroupName),
    /// The state file under `data_dir` could not be read or written.
    #[error("state file {path}: {message}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The node has shut down.
    #[error("the node has shut down")]
    ShutDown,
    /// The node stopped itself because it must not run: for example another live process
    /// already runs under its name.
    #[error("this node halted: {0}")]
    Halted(Refusal),
}
