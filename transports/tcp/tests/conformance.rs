//! The test kit's transport conformance suite, on loopback TCP.

use baton_core::Transport;
use baton_testkit::conformance::Subject;
use baton_transport_tcp::{TcpConfig, TcpTransport};
use std::sync::Arc;

struct Tcp;

impl Subject for Tcp {
    fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(TcpTransport::new(TcpConfig::new(
            "conformance",
            b"conformance secret".to_vec(),
        )))
    }
    fn listen(&self, _name: &str) -> String {
        "127.0.0.1:0".into()
    }
}

baton_testkit::transport_conformance!(Tcp);
