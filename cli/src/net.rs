//! The TCP glue: the node's transport and the client connection `status` / `work` use.

use crate::errors::{Kind, fail};
use crate::settings::Target;
use anyhow::{Context, Result};
use baton_core::config::Config;
use baton_core::engine::StatusSnapshot;
use baton_core::{CallError, Served, Transport};
use baton_transport_tcp::{ClientError, TcpClient, TcpConfig, TcpTransport};
use std::sync::Arc;
use std::time::Duration;

/// The TCP transport for a node of `config`, authenticating with `secret` (and over mutual
/// TLS with `[cluster.tls]`).
pub(crate) fn transport(config: &Config, secret: Vec<u8>) -> Result<Arc<dyn Transport>> {
    let mut cfg = TcpConfig::new(config.cluster.name.clone(), secret);
    set_tls(&mut cfg, config)?;
    Ok(Arc::new(TcpTransport::new(cfg)))
}

/// Reads `[cluster.tls]`'s files into `cfg`, if the section is there. A file that cannot be
/// used is an error naming the field, the file and what was wrong.
fn set_tls(cfg: &mut TcpConfig, config: &Config) -> Result<()> {
    let Some(files) = &config.cluster.tls else {
        return Ok(());
    };
    #[cfg(feature = "tls")]
    {
        let tls = baton_transport_tcp::tls::Tls::from_files(&files.cert, &files.key, &files.ca)
            .map_err(|e| fail(Kind::Config, e.to_string()))?;
        cfg.tls = Some(tls);
        Ok(())
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (cfg, files);
        Err(fail(
            Kind::Config,
            "cluster.tls: this baton was built without TLS (cargo feature `tls`)",
        ))
    }
}

/// An authenticated client connection to one node (never a member of the cluster).
pub(crate) struct Client {
    inner: TcpClient,
    addr: String,
}

impl Client {
    /// Connects and authenticates as a client within `timeout`.
    pub(crate) async fn connect(target: &Target, timeout: Duration) -> Result<Client> {
        let mut cfg = TcpConfig::new(target.cluster.clone(), target.secret.clone());
        cfg.handshake_timeout = timeout;
        if let Some(config) = &target.config {
            set_tls(&mut cfg, config)?;
        }
        let name = format!("baton-cli-{}", std::process::id());
        let inner = TcpClient::connect(&target.addr, &cfg, &name)
            .await
            .map_err(|e| connect_error(target, e))?;
        Ok(Client {
            inner,
            addr: target.addr.clone(),
        })
    }

    /// What the node knows.
    pub(crate) async fn status(&mut self) -> Result<StatusSnapshot> {
        self.inner
            .status()
            .await
            .with_context(|| format!("status from {}", self.addr))
    }

    /// Routes work through the node: who served it under which term, or why not.
    pub(crate) async fn call(
        &mut self,
        group: &str,
        any: bool,
        payload: Vec<u8>,
    ) -> Result<Result<Served, CallError>> {
        self.inner
            .call(group, any, payload)
            .await
            .with_context(|| format!("work through {}", self.addr))
    }
}

impl Client {
    /// Asks the leader of `group`, through the node, to hand off: the handoff made, or why not.
    pub(crate) async fn control(
        &mut self,
        group: &str,
        op: baton_core::message::ControlOp,
    ) -> Result<Result<baton_core::HandedOff, baton_core::ControlError>> {
        self.inner
            .control(group, op)
            .await
            .with_context(|| format!("handoff request through {}", self.addr))
    }
}

/// Why a client could not connect, in one line with a hint, and its kind.
fn connect_error(target: &Target, e: ClientError) -> anyhow::Error {
    let addr = &target.addr;
    match e {
        ClientError::Connect { source, .. } => fail(
            Kind::Unreachable,
            format!("cannot connect to {addr}: {source}; is a node running at {addr}?"),
        ),
        ClientError::Timeout { after, .. } => fail(
            Kind::Timeout,
            format!(
                "no answer from {addr} within {after:?} (connect and handshake); is a baton node listening at {addr}?"
            ),
        ),
        ClientError::Handshake { reason, .. } => fail(
            Kind::Auth,
            format!(
                "the node at {addr} refused this client: {reason}; does this client use the node's cluster name (it uses {:?}) and secret?",
                target.cluster
            ),
        ),
        other => fail(
            Kind::Runtime,
            format!("cannot talk to the node at {addr}: {other}"),
        ),
    }
}
