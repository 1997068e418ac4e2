//! A client connection to one node, for tools such as `baton status` and `baton work`.
//!
//! A client runs the same authenticated handshake as a node, flagged as a client: the node
//! reports what it sends as [`TransportEvent::ClientMessage`](baton_core::TransportEvent) from
//! an id of this connection, answers over the same connection, and never counts the client as a
//! peer (no listen address, no reconnects, no proof of death).
//!
//! ```no_run
//! # async fn demo() -> Result<(), baton_transport_tcp::ClientError> {
//! use baton_core::Message;
//! use baton_transport_tcp::{TcpClient, TcpConfig};
//!
//! let cfg = TcpConfig::new("demo", b"cluster secret".to_vec());
//! let mut client = TcpClient::connect("127.0.0.1:7101", &cfg, "baton-cli").await?;
//! let status = client.status().await?;                       // members, leaders, terms
//! let outcome = client.call("tracked", false, b"job".to_vec()).await?;
//! match outcome {
//!     Ok(served) => println!("{} did it under term {}", served.member.node, served.term),
//!     Err(e) => println!("not served: {e}"),
//! }
//! let raw = client.request(&Message::StatusRequest).await?;  // any message, next answer
//! # let _ = (status, raw); Ok(()) }
//! ```

use crate::TcpConfig;
use crate::handshake::{HandshakeConfig, HandshakeError, Initiator, PeerInfo, Step};
use crate::net::{DialError, dialed_stream};
use crate::stream::{Stream, tls_failure};
use crate::wire::{
    FrameOpener, FrameSealer, WireError, authenticated, handshake_codec, open_message, seal_message,
};
use baton_core::engine::StatusSnapshot;
use baton_core::message::{ControlError, ControlOp, ControlRequest, HandedOff, Request};
use baton_core::{CallError, Fingerprint, GroupName, Incarnation, Message, NodeId, Served};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::io;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
    /// The node refused the handshake or it failed.
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("{addr} did not answer within {after:?}")]
    Timeout {
        /// The address.
        addr: String,
        /// The deadline.
        after: std::time::Duration,
    },
    /// The connection failed after the handshake.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The node closed the connection.
    #[error("the node closed the connection")]
    Closed,
    /// The node answered with a message that does not answer the request.
    #[error("unexpected answer from the node: {0}")]
    Unexpected(String),
}

/// An authenticated connection to one node, as a client.
pub struct TcpClient {
    framed: Framed<Stream, LengthDelimitedCodec>,
    node: PeerInfo,
    max_frame: usize,
    /// Seal what the client sends and open what it receives.
    sealer: FrameSealer,
    opener: FrameOpener,
    /// Id of the next [`TcpClient::call`].
    next_id: u64,
}

debug_showing!(TcpClient { node });

impl TcpClient {
    /// Connects to the node at `addr` and authenticates with `config`'s cluster and secret
    /// (within `config.handshake_timeout`). `name` identifies the client in the node's logs.
    pub async fn connect(addr: &str, config: &TcpConfig, name: &str) -> Result<Self, ClientError> {
        let deadline = config.handshake_timeout;
        match tokio::time::timeout(deadline, Self::connect_inner(addr, config, name)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                addr: addr.to_string(),
                after: deadline,
            }),
        }
    }

    async fn connect_inner(
        addr: &str,
        config: &TcpConfig,
        name: &str,
    ) -> Result<Self, ClientError> {
        let handshake_err = |reason: String| ClientError::Handshake {
            addr: addr.to_string(),
            reason,
        };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        // Under TLS (the config's `tls`), the TLS handshake first; its failures name the cause.
        let stream = dialed_stream(config, addr, stream)
            .await
            .map_err(|e| match e {
                DialError::PeerClosed => {
                    handshake_err("the node closed the connection during the TLS handshake".into())
                }
                e => handshake_err(e.to_string()),
            })?;
        let mut framed = Framed::new(stream, handshake_codec(config.max_frame));
        let mut nonce = [0u8; crate::handshake::NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| handshake_err(format!("no randomness: {e}")))?;
        let (mut hs, hello) = Initiator::new(
            HandshakeConfig {
                cluster: config.cluster.clone(),
                secret: config.secret.clone(),
                node: NodeId::new(name),
                incarnation: Incarnation(0),
                addr: String::new(),
                client: true,
                // Never compared: a client does not take part in elections.
                fingerprint: Fingerprint::default(),
            },
            nonce,
        );
        framed.send(Bytes::from(hello)).await?;
        let mut step = |frame: Option<io::Result<bytes::BytesMut>>| {
            match frame {
            Some(Ok(frame)) => hs.on_frame(&frame).map_err(|e| handshake_err(e.to_string())),
            Some(Err(e)) => Err(match tls_failure(&e) {
                Some(why) => handshake_err(why),
                None => ClientError::Io(e),
            }),
            None => Err(handshake_err(
                "the node closed the connection (refused: wrong cluster, protocol version or secret?)"
                    .into(),
            )),
        }
        };
        let auth = match step(framed.next().await)? {
            Step::Reply { frame, .. } => frame,
            Step::Done { .. } => return Err(handshake_err(HandshakeError::Finished.to_string())),
        };
        framed.send(Bytes::from(auth)).await?;
        let node = match step(framed.next().await)? {
            Step::Done { peer, .. } => peer,
            Step::Reply { .. } => return Err(handshake_err(HandshakeError::Finished.to_string())),
        };
        let Some(keys) = hs.session_keys() else {
            return Err(handshake_err(HandshakeError::Finished.to_string()));
        };
        authenticated(&mut framed, config.max_frame);
        Ok(TcpClient {
            framed,
            node,
            max_frame: config.max_frame,
            sealer: FrameSealer::new(&keys.send),
            opener: FrameOpener::new(&keys.recv),
            next_id: 1,
        })
    }

    /// The node this client is connected to (authenticated by the handshake).
    pub fn node(&self) -> &PeerInfo {
        &self.node
    }

    /// Sends `message` to the node.
    pub async fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        let bytes = seal_message(&mut self.sealer, message, self.max_frame)?;
        self.framed.send(Bytes::from(bytes)).await?;
        Ok(())
    }

    /// The next message from the node.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        match self.framed.next().await {
            Some(Ok(frame)) => Ok(open_message(&mut self.opener, &frame)?),
            Some(Err(e)) => Err(ClientError::Io(e)),
            None => Err(ClientError::Closed),
        }
    }

    /// Sends `message` and returns the node's next message: the answer, for a node answers a
    /// client's requests in order. (Use [`TcpClient::status`] and [`TcpClient::call`], which
    /// check the answer's kind and id.)
    pub async fn request(&mut self, message: &Message) -> Result<Message, ClientError> {
        self.send(message).await?;
        self.recv().await
    }

    /// Asks the node what it knows: members, and each group's leader and term.
    ///
    /// Not cancel-safe against a lost answer: after a timeout around this call, drop the client
    /// and connect again.
    pub async fn status(&mut self) -> Result<StatusSnapshot, ClientError> {
        self.send(&Message::StatusRequest).await?;
        loop {
            match self.recv().await? {
                Message::StatusResponse(status) => return Ok(status),
                // The late answer of a call (or a control request) given up on.
                Message::Response(_) | Message::ControlResponse(_) => continue,
                other => return Err(ClientError::Unexpected(kind(&other))),
            }
        }
    }

    /// Routes `payload` through the node to the leader of `group` (or, with `any`, to
    /// whichever member the node picks) and waits for the outcome: who served it under which
    /// term, or why it failed ([`CallError`]). The node applies its `call_timeout_ms`.
    pub async fn call(
        &mut self,
        group: impl Into<GroupName>,
        any: bool,
        payload: Vec<u8>,
    ) -> Result<Result<Served, CallError>, ClientError> {
        let group = group.into();
        let request = |id| {
            Message::ClientCall(Request {
                id,
                group,
                any,
                payload,
            })
        };
        self.ask(request, |id, m| match m {
            Message::Response(r) if r.id == id => Reply::Ours(r.result),
            other => Reply::Not(other),
        })
        .await
    }

    /// Asks the leader of `group`, through the node (which routes it like a call), to hand
    /// leadership off: to node `to` ([`ControlOp::Transfer`]) or to the next in its ranking
    /// ([`ControlOp::StepDown`]). The outcome: the handoff made, or the leader's refusal
    /// ([`ControlError`]). The node applies its `call_timeout_ms`.
    pub async fn control(
        &mut self,
        group: impl Into<GroupName>,
        op: ControlOp,
    ) -> Result<Result<HandedOff, ControlError>, ClientError> {
        let group = group.into();
        let request = |id| Message::ClientControl(ControlRequest { id, group, op });
        self.ask(request, |id, m| match m {
            Message::ControlResponse(r) if r.id == id => Reply::Ours(r.result),
            other => Reply::Not(other),
        })
        .await
    }

    /// Sends `request(id)` under a fresh id and waits for its answer: the first message
    /// `ours(id, …)` takes. Late answers of earlier requests (given up on) are skipped; any
    /// other message is [`ClientError::Unexpected`].
    async fn ask<T>(
        &mut self,
        request: impl FnOnce(u64) -> Message,
        ours: impl Fn(u64, Message) -> Reply<T>,
    ) -> Result<T, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&request(id)).await?;
        loop {
            match ours(id, self.recv().await?) {
                Reply::Ours(answer) => return Ok(answer),
                // Late answers of calls given up on, or of an earlier status request.
                Reply::Not(
                    Message::Response(_) | Message::StatusResponse(_) | Message::ControlResponse(_),
                ) => {
                    continue;
                }
                Reply::Not(other) => return Err(ClientError::Unexpected(kind(&other))),
            }
        }
    }
}

/// What [`TcpClient::ask`]'s matcher makes of a message: the answer it waits for, or not.
enum Reply<T> {
    Ours(T),
    Not(Message),
}

/// The variant name of a message, for [`ClientError::Unexpected`].
fn kind(m: &Message) -> String {
    let debug = format!("{m:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}
