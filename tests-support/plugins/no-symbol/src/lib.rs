//! A shared library that is not a baton plugin: it exports a function, but not
//! `baton_policy_v1`. For baton-core's plugin-host tests.

/// Some unrelated exported function.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_baton_policy() -> u32 {
    42
}
