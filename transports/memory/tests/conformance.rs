//! The test kit's transport conformance suite, on the in-memory network.

use baton_core::Transport;
use baton_testkit::conformance::Subject;
use baton_transport_memory::MemoryNetwork;
use std::sync::{Arc, OnceLock};

/// One network per test (each test evaluates the subject expression afresh).
struct Memory(OnceLock<MemoryNetwork>);

impl Subject for Memory {
    fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.0.get_or_init(MemoryNetwork::new).transport())
    }
    fn listen(&self, name: &str) -> String {
        name.into()
    }
}

baton_testkit::transport_conformance!(Memory(OnceLock::new()));
