//! Exports `baton_policy_v1`, but its table has the wrong magic bytes. For baton-core's
//! plugin-host tests.

use baton_core::plugin::abi::{PluginHeader, PolicyTable};

static TABLE: PolicyTable = PolicyTable::header_only(PluginHeader {
    magic: *b"NOTBATON",
    ..PluginHeader::CURRENT
});

/// The entry point, returning a table the host must refuse.
#[unsafe(no_mangle)]
pub extern "C" fn baton_policy_v1() -> *const PolicyTable {
    &TABLE
}
