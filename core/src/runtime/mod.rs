//! The tokio runtime: a [`Node`] drives one [`Engine`](crate::engine::Engine) over a
//! [`Transport`](crate::Transport).
//!
//! The node owns a single task (the *driver*) that waits for whichever comes first — a
//! transport event, an API command, or the engine's next deadline — feeds it to the engine and
//! performs the actions it returns. All protocol decisions are the engine's; this module only
//! moves bytes, time and results in and out.
//!
//! One file per concern:
//!
//! - `node`: [`Node`], the handle applications hold, and the state it shares with the driver;
//! - `builder`: [`NodeBuilder`], from a config to a running driver;
//! - `driver`: the task that feeds the engine and performs its actions;
//! - `handler`: [`Handler`], [`Work`] and [`Service`], the application's side of a group;
//! - `state_file`: term, vote and incarnation on disk ([`state_path`]);
//! - `error`: [`NodeError`];
//! - [`hardware`]: what this machine offers (CPUs, memory), detected;
//! - `elector`: [`Elector`], the seam for elections held outside the engine (etcd);
//! - `registry`: [`ClusterRegistry`], the cluster's own member table;
//! - `observe`: [`NodeEvent`], what the driver did, for observers ([`Node::subscribe`]);
//! - `hooks`: the leadership hooks of a [`Service`] (`on_started_leading` with its
//!   [`CancellationToken`], `on_stopped_leading`, `on_new_leader`), and the release of their
//!   work before a handoff;
//! - `lifecycle`: shutdown, leave, and what dropping a [`Node`] or a [`Service`] does.

mod builder;
mod driver;
mod elector;
mod error;
mod handler;
pub mod hardware;
mod hooks;
mod lifecycle;
mod node;
mod observe;
mod registry;
mod state_file;

pub use builder::NodeBuilder;
pub use elector::{Candidacy, Elector, HandOff};
pub use error::NodeError;
pub use handler::{Handler, Service, Work};
pub use hooks::{CancellationToken, DEFAULT_RELEASE_TIMEOUT};
pub use node::{CallOptions, Node, TransferError};
pub use observe::{EVENT_BUFFER, NodeEvent};
pub use registry::ClusterRegistry;
pub use state_file::state_path;

use driver::Command;
use node::lock;
