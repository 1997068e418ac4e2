//! Exports `baton_policy_v1` with the right magic but a future ABI version (and a table the
//! host must not read past its header). For baton-core's plugin-host tests.

use baton_core::plugin::abi::{ABI_VERSION, PluginHeader, PolicyTable};

/// The ABI version this "plugin" claims.
pub const CLAIMED_ABI_VERSION: u32 = ABI_VERSION + 41;

static TABLE: PolicyTable = PolicyTable::header_only(PluginHeader {
    abi_version: CLAIMED_ABI_VERSION,
    ..PluginHeader::CURRENT
});

/// The entry point, returning a table of another ABI version.
#[unsafe(no_mangle)]
pub extern "C" fn baton_policy_v1() -> *const PolicyTable {
    &TABLE
}
