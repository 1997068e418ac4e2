//! Policy plugins: a [`LeaderPolicy`] compiled into a shared library (`.so`, `.dylib`, `.dll`)
//! and loaded by a node at start, chosen in the config with
//! `policy = { plugin = "target/release/libmy_policy.so", config = { zone = "eu-1" } }`.
//!
//! # Writing a plugin
//!
//! A plugin is an ordinary crate with `crate-type = ["cdylib", "rlib"]` (the `rlib` lets the same
//! policy be linked statically too) that depends on `baton-core` with `default-features = false`
//! — no tokio, no libloading — and nothing else it does not itself need. It implements
//! [`LeaderPolicy`] exactly as a statically linked policy does, adds [`PluginPolicy`] (a name
//! and a constructor from its JSON config) and calls [`export_policy!`](crate::export_policy)
//! once:
//!
//! ```
//! use baton_core::plugin::{PluginPolicy, serde_json};
//! use baton_core::{ElectionInput, LeaderPolicy, MemberId};
//!
//! /// Ranks candidates by member id, reversed.
//! pub struct Reversed;
//!
//! impl LeaderPolicy for Reversed {
//!     fn name(&self) -> &str { Self::NAME }
//!     fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
//!         let mut ids: Vec<MemberId> = input.candidates.iter().map(|c| c.member.clone()).collect();
//!         ids.sort_by(|a, b| b.cmp(a));
//!         ids
//!     }
//! }
//!
//! impl PluginPolicy for Reversed {
//!     const NAME: &'static str = "reversed";
//!     fn from_config(config: serde_json::Value) -> Result<Self, String> {
//!         match config {
//!             serde_json::Value::Null => Ok(Reversed),
//!             other => Err(format!("`reversed` takes no config, got {other}")),
//!         }
//!     }
//! }
//!
//! baton_core::export_policy!(Reversed);
//! # let table = unsafe { &*baton_policy_v1() };
//! # assert_eq!(table.header, baton_core::plugin::abi::PluginHeader::CURRENT);
//! ```
//!
//! `cargo build --release` then leaves `target/release/libmy_policy.so`, which exports exactly
//! one baton symbol, `baton_policy_v1` (see `nm -D`).
//!
//! # The ABI
//!
//! A C ABI, versioned ([`abi::ABI_VERSION`], 2), with a JSON config and postcard rank payloads;
//! the details are in [`abi`]. The exported symbol
//! returns a pointer to a static `#[repr(C)]` [`abi::PolicyTable`]:
//!
//! | field | type | |
//! | --- | --- | --- |
//! | `magic` | `[u8; 8]` | `b"BATONPOL"` |
//! | `abi_version` | `u32` | [`abi::ABI_VERSION`] |
//! | `struct_size` | `u32` | `size_of::<PolicyTable>()` |
//! | `name` | `*const c_char` | NUL-terminated, static |
//! | `create` | `fn(config_json, len, *mut instance, *mut error) -> status` | |
//! | `rank` | `fn(instance, input, len, *mut out) -> status` (postcard in and out) | |
//! | `free` | `fn(buffer)` | frees what `create` / `rank` returned |
//! | `destroy` | `fn(instance)` | |
//!
//! The host checks the symbol, the magic, the ABI version and the struct size before it calls
//! anything. Every entry point catches panics ([`std::panic::catch_unwind`]) and returns a status
//! code with the panic message instead of unwinding across the boundary.
//!
//! # How data crosses the boundary
//!
//! Rust types have no stable layout between two compilations, so nothing but bytes crosses.
//! The config — a TOML table in the node's file — is converted to JSON once, at load, and the
//! plugin gets it as a [`serde_json::Value`] (`null` when there is none). At each election the
//! host encodes an [`abi::RankRequest`] — the [`ElectionInput`](crate::ElectionInput), fields
//! flattened, strings borrowed, each distinct services list once — with
//! [postcard](https://docs.rs/postcard) into a buffer it owns and lends to `rank`
//! ([`abi::encode_request`]); the plugin decodes it without copying and builds the owned input
//! ([`abi::decode_request`]), ranks, and answers with an [`abi::RankResponse`] (the ranking or
//! the tiers as `(node, seq)` pairs) in a buffer *it* allocated, which the host reads
//! ([`abi::decode_response`]) and hands back to the plugin's `free`. Each side frees only what
//! its own allocator made. The payloads begin with their `schema` ([`abi::SCHEMA_VERSION`]),
//! which each side reads first and refuses by name when it differs.
//!
//! ABI version 1 sent the same payloads as JSON; decoding that JSON was ~60 % of a plugin call
//! at 100 candidates (docs/PERFORMANCE.md, "Plugin vs static"). A plugin built against it is
//! refused at load, naming both versions.
//!
//! # Trust model
//!
//! **A plugin is trusted code running inside the node's process**, with all of its rights:
//! loading one runs its initializers, and a plugin can read memory, open sockets or crash the
//! process. The ABI checks protect against *mistakes* — a file that is not a plugin, one built
//! against another baton-core, a policy that panics or returns a ranking that is not a
//! permutation of the candidates — not against malice. Load only plugins you would link in.
//!
//! At election time a plugin can never take the node down through the ABI: a panic, an error
//! status, an undecodable answer or a bad ranking is logged (`tracing`, target
//! `baton_core::plugin`) and the election falls back to member-id order
//! ([`ByMemberId`](crate::ByMemberId)); see `LoadedPolicy` (feature `plugin-host`).
//!
//! # Rules for plugin authors
//!
//! - **No tokio** (and no other runtime with thread-local state): a cdylib carries its own
//!   copy of every crate it uses, so the plugin's tokio would not see the node's runtime — its
//!   thread-locals are different ones — and `Handle::current()` and friends fail or, worse,
//!   start a second runtime. A policy is synchronous and pure anyway.
//! - Be deterministic: every node must rank the same input the same way.
//! - Build with `panic = "unwind"` (the default): a plugin built with `panic = "abort"` aborts
//!   the node on its first panic, before any `catch_unwind` can help.
//! - Build against the same baton-core minor version as the node (the host refuses another
//!   ABI version and says which to rebuild against).
//! - `rank` may be called from several threads at once: `LeaderPolicy: Send + Sync` enforces it.
//!
//! # A plugin is never unloaded
//!
//! The host loads the library once and leaks the handle: it stays mapped until the process
//! exits, even after the policy is dropped and even when it turned out not to be a plugin. A
//! Rust cdylib cannot be unloaded soundly: its thread-local destructors, `atexit` handlers,
//! statics, panic payload vtables and any `&'static` it handed out point into its code and data,
//! and `dlclose` would leave them dangling (a crash at the next thread exit, at best). Plugins
//! are loaded at start and there are few of them, so the cost is a few mappings.
//!
//! [`LeaderPolicy`]: crate::LeaderPolicy

use crate::LeaderPolicy;

pub mod abi;
pub mod guest;

#[cfg(feature = "plugin-host")]
mod host;

#[cfg(feature = "plugin-host")]
pub use host::{LoadedPolicy, PluginError, load_policy, load_policy_json, load_spec};

/// The JSON library configs arrive in, re-exported so that a plugin crate needs only
/// `baton-core`: `baton_core::plugin::serde_json::Value`.
pub use serde_json;

/// A [`LeaderPolicy`] that can be built into a plugin: it has a static name and a constructor
/// from its JSON config. [`export_policy!`](crate::export_policy) needs it.
///
/// `Send + Sync` come with [`LeaderPolicy`]: the host may call `rank` from several threads.
pub trait PluginPolicy: LeaderPolicy + Sized + 'static {
    /// The policy's name, as the plugin table reports it before any instance exists
    /// (`"zone-preference"`). Should be what [`LeaderPolicy::name`] returns. Must not contain a
    /// NUL byte (a compile error in `export_policy!`).
    const NAME: &'static str;

    /// Builds the policy from the `config` of `policy = { plugin = "…", config = { … } }`,
    /// converted from TOML to JSON; [`serde_json::Value::Null`] when there is no `config`.
    /// The error message is shown to the user as is, prefixed by the plugin's path.
    fn from_config(config: serde_json::Value) -> Result<Self, String>;
}

/// Exports a [`PluginPolicy`] as a baton policy plugin.
///
/// Expands to one `#[unsafe(no_mangle)] pub extern "C" fn baton_policy_v1() -> *const
/// PolicyTable` returning a pointer to a static [`abi::PolicyTable`] whose entry points are
/// [`guest::create`], [`guest::rank`], [`guest::free`] and [`guest::destroy`] instantiated for the
/// type. Call it once per cdylib, at module level. Everything it needs is reached through
/// `$crate`, so the plugin crate depends on `baton-core` only.
///
/// A crate built as both `cdylib` and `rlib` keeps the symbol in the `rlib` too: linking two
/// such crates statically into one binary would define `baton_policy_v1` twice. Put the call
/// behind a cargo feature if you need that.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty $(,)?) => {
        /// The baton policy plugin entry point, generated by `baton_core::export_policy!`:
        /// returns this plugin's static ABI table.
        #[unsafe(no_mangle)]
        pub extern "C" fn baton_policy_v1() -> *const $crate::plugin::abi::PolicyTable {
            const NAME: &str = <$policy as $crate::plugin::PluginPolicy>::NAME;
            static NAME_C: [u8; NAME.len() + 1] =
                $crate::plugin::guest::c_name::<{ NAME.len() + 1 }>(NAME);
            static TABLE: $crate::plugin::abi::PolicyTable =
                $crate::plugin::guest::table::<$policy>(&NAME_C);
            &TABLE
        }

        const _: $crate::plugin::abi::EntryFn = baton_policy_v1;
    };
}
