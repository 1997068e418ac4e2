//! The C ABI between a policy plugin and its host, version [`ABI_VERSION`].
//!
//! Everything here is plain data: the `#[repr(C)]` [`PolicyTable`] a plugin exports, the
//! [`PluginBuffer`] bytes travel in, the status codes, and the JSON payloads ([`RankRequest`],
//! [`RankResponse`]) that cross in those buffers. The guest side ([`super::guest`], used by
//! [`export_policy!`](crate::export_policy)) and the host side (feature `plugin-host`) are both
//! written against this module and nothing else.
//!
//! # The contract
//!
//! 1. The plugin exports one symbol, [`SYMBOL`] (`baton_policy_v1`), of type [`EntryFn`]:
//!    `extern "C" fn() -> *const PolicyTable`. It returns a pointer to a table that lives as long
//!    as the library is loaded (a `static`). The `_v1` in the name is the version of *this
//!    entry-point contract* — "a function returning a table that starts with a
//!    [`PluginHeader`]" — which is meant never to change; the table itself is versioned by
//!    [`PluginHeader::abi_version`], so that a host meeting a plugin of another version can say
//!    "ABI mismatch: found 2, expected 1" instead of "not a plugin".
//! 2. The host reads the [`PluginHeader`] first — [`ABI_MAGIC`], then [`ABI_VERSION`], then
//!    `struct_size` (at least `size_of::<PolicyTable>()`) — and only then the rest of the table.
//!    Within one ABI version a table may only grow at its end; a host reads the fields it knows.
//! 3. `create(config, len, &mut instance, &mut error)` builds one policy from its JSON config
//!    (`null` when the user gave none). On [`STATUS_OK`] `instance` is an opaque non-null
//!    pointer; otherwise `error` holds a UTF-8 message.
//! 4. `rank(instance, input, len, &mut out)` ranks one [`RankRequest`] (JSON). On [`STATUS_OK`]
//!    `out` holds a [`RankResponse`] (JSON); on [`STATUS_ERROR`] or [`STATUS_PANIC`] a UTF-8
//!    message. `rank` may be called from several threads at once on the same instance.
//! 5. Every non-empty [`PluginBuffer`] the plugin hands out is given back exactly once to its
//!    `free` — memory is freed by the allocator that made it, never across the boundary.
//! 6. `destroy(instance)` is called once, when the host drops the policy; the library itself
//!    stays loaded (see the [module docs](super)).
//! 7. No entry point unwinds: each catches panics and reports [`STATUS_PANIC`]. (A plugin must
//!    therefore be built with `panic = "unwind"`, the default; with `panic = "abort"` a panic in
//!    the plugin aborts the host process.)

use crate::types::{ElectionInput, MemberId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::ffi::{CStr, c_char, c_void};

/// The first eight bytes of every [`PolicyTable`].
pub const ABI_MAGIC: [u8; 8] = *b"BATONPOL";

/// The version of the [`PolicyTable`] layout and of the calling contract. Bumped on any change a
/// plugin built against an older baton-core could not follow.
pub const ABI_VERSION: u32 = 1;

/// The version of the JSON payloads ([`RankRequest`], [`RankResponse`]). Bumped when a payload
/// changes in a way serde's defaults cannot absorb (adding an optional field does not bump it).
pub const SCHEMA_VERSION: u32 = 1;

/// The name of the exported entry point, without the terminating NUL: `baton_policy_v1`.
pub const SYMBOL: &str = "baton_policy_v1";

/// [`SYMBOL`] as a C string, for `dlsym`.
pub const SYMBOL_C: &CStr = c"baton_policy_v1";

/// A call succeeded; the output buffer holds the answer.
pub const STATUS_OK: i32 = 0;
/// The plugin refused (bad config, undecodable input); the buffer holds a UTF-8 message.
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked; the panic was caught and the buffer holds its message.
pub const STATUS_PANIC: i32 = 2;

/// The entry point's type: returns the plugin's table (or null, which the host refuses).
pub type EntryFn = unsafe extern "C" fn() -> *const PolicyTable;

/// `create(config_json, config_len, out_instance, out_error) -> status`.
///
/// `config_json` points to `config_len` bytes of UTF-8 JSON (never null; `null` when there is no
/// config). On [`STATUS_OK`] the plugin writes an opaque non-null instance pointer to
/// `*out_instance`; otherwise it may write a message to `*out_error`.
pub type CreateFn = unsafe extern "C" fn(
    config_json: *const u8,
    config_len: usize,
    out_instance: *mut *mut c_void,
    out_error: *mut PluginBuffer,
) -> i32;

/// `rank(instance, input_json, input_len, out) -> status`.
///
/// `input_json` holds a [`RankRequest`]; on [`STATUS_OK`] `*out` holds a [`RankResponse`],
/// otherwise a UTF-8 message. Must be safe to call concurrently on one instance.
pub type RankFn = unsafe extern "C" fn(
    instance: *const c_void,
    input_json: *const u8,
    input_len: usize,
    out: *mut PluginBuffer,
) -> i32;

/// `free(buffer)`: gives a buffer the plugin allocated back to it.
pub type FreeFn = unsafe extern "C" fn(buffer: PluginBuffer);

/// `destroy(instance)`: drops an instance made by `create`.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The fixed prefix of every table, of every ABI version: what a host checks before it trusts
/// anything else.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PluginHeader {
    /// Always [`ABI_MAGIC`].
    pub magic: [u8; 8],
    /// The [`ABI_VERSION`] the plugin was built with.
    pub abi_version: u32,
    /// `size_of::<PolicyTable>()` as the plugin saw it.
    pub struct_size: u32,
}

impl PluginHeader {
    /// The header of a table built against this baton-core.
    pub const CURRENT: PluginHeader = PluginHeader {
        magic: ABI_MAGIC,
        abi_version: ABI_VERSION,
        struct_size: std::mem::size_of::<PolicyTable>() as u32,
    };
}

/// The table a plugin exports (ABI version 1).
///
/// Layout (64-bit): `magic [u8; 8]` @0, `abi_version u32` @8, `struct_size u32` @12,
/// `name *const c_char` @16, `create` @24, `rank` @32, `free` @40, `destroy` @48; 56 bytes.
/// The function pointers are `Option`s so that a null one is caught by the host instead of being
/// undefined behaviour.
#[repr(C)]
#[derive(Debug)]
pub struct PolicyTable {
    /// Magic, version and size.
    pub header: PluginHeader,
    /// The policy's name, a NUL-terminated UTF-8 string in the plugin's static data.
    pub name: *const c_char,
    /// Builds an instance from its JSON config.
    pub create: Option<CreateFn>,
    /// Ranks one input.
    pub rank: Option<RankFn>,
    /// Frees a buffer the plugin returned.
    pub free: Option<FreeFn>,
    /// Drops an instance.
    pub destroy: Option<DestroyFn>,
}

// SAFETY: a `PolicyTable` is immutable static data: its only pointer, `name`, points to a
// NUL-terminated string in the plugin's read-only static memory, and the function pointers are
// plain code addresses. Sharing it between threads cannot race.
unsafe impl Sync for PolicyTable {}
// SAFETY: as above — nothing in the table is tied to the thread that built it.
unsafe impl Send for PolicyTable {}

impl PolicyTable {
    /// A table of `header` and nothing else: no name, no functions. A host must refuse it at
    /// the header or at the first missing entry; the plugin-host tests export such tables.
    pub const fn header_only(header: PluginHeader) -> PolicyTable {
        PolicyTable {
            header,
            name: std::ptr::null(),
            create: None,
            rank: None,
            free: None,
            destroy: None,
        }
    }
}

/// Bytes handed across the boundary: a `Vec<u8>` taken apart by the side that allocated it.
///
/// The receiver reads `len` bytes at `ptr` and hands the buffer back to the allocator's owner
/// (the plugin's `free`) unchanged. An empty buffer has a null `ptr` and needs no freeing.
#[repr(C)]
#[derive(Debug)]
pub struct PluginBuffer {
    /// Start of the bytes (null when empty).
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// The allocation's capacity, needed to rebuild the `Vec` when freeing.
    pub capacity: usize,
}

impl PluginBuffer {
    /// The empty buffer.
    pub const EMPTY: PluginBuffer = PluginBuffer {
        ptr: std::ptr::null_mut(),
        len: 0,
        capacity: 0,
    };

    /// Takes a vector apart into a buffer; the memory now belongs to whoever calls
    /// [`into_vec`](Self::into_vec) on this side of the boundary.
    pub fn from_vec(bytes: Vec<u8>) -> PluginBuffer {
        if bytes.capacity() == 0 {
            return PluginBuffer::EMPTY;
        }
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        PluginBuffer {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            capacity: bytes.capacity(),
        }
    }

    /// True when the buffer holds no allocation.
    pub fn is_empty(&self) -> bool {
        self.ptr.is_null()
    }

    /// Puts the vector back together.
    ///
    /// # Safety
    ///
    /// The buffer must come from [`PluginBuffer::from_vec`] **in the same binary** (same
    /// allocator) and must not have been turned back into a vector before.
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: the caller guarantees that ptr/len/capacity are the parts of a `Vec<u8>` made
        // by this binary's allocator and that nobody else owns them any more.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.capacity) }
    }

    /// The bytes, borrowed.
    ///
    /// # Safety
    ///
    /// `ptr` must be null or point to `len` initialised bytes that stay valid and unchanged for
    /// the returned lifetime (i.e. until the buffer is freed).
    pub unsafe fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: guaranteed by the caller (see above); `ptr` is non-null here.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// What the host sends to `rank`, as JSON:
/// `{"schema": 1, "tiers": false, "input": { "group": …, "candidates": [ … ], … }}`.
///
/// `input` is an [`ElectionInput`] serialized with serde (member ids are
/// `{"node": "a", "seq": 0}`, labels a string map).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankRequest<'a> {
    /// [`SCHEMA_VERSION`] of the sender.
    pub schema: u32,
    /// When true, the host asks for [`LeaderPolicy::tiers`](crate::LeaderPolicy::tiers) instead
    /// of [`rank`](crate::LeaderPolicy::rank).
    #[serde(default)]
    pub tiers: bool,
    /// The input to rank.
    pub input: Cow<'a, ElectionInput>,
}

/// What `rank` answers, as JSON: `{"schema": 1, "ranking": [{"node": "b", "seq": 0}, …]}`, or
/// with `"tiers": [[…], […]]` instead of `"ranking"` when the request asked for tiers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RankResponse {
    /// [`SCHEMA_VERSION`] of the plugin.
    pub schema: u32,
    /// The candidates, best first (answer to a plain request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Vec<MemberId>>,
    /// The candidates in tiers of equally good ones, best tier first (answer to `tiers: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<Vec<MemberId>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_the_fixed_prefix() {
        assert_eq!(std::mem::size_of::<PluginHeader>(), 16);
        assert_eq!(std::mem::offset_of!(PolicyTable, header), 0);
        assert_eq!(
            std::mem::offset_of!(PolicyTable, name),
            std::mem::size_of::<PluginHeader>()
        );
        assert_eq!(
            PluginHeader::CURRENT.struct_size as usize,
            std::mem::size_of::<PolicyTable>()
        );
        assert_eq!(SYMBOL_C.to_str().unwrap(), SYMBOL);
    }

    #[test]
    fn buffer_round_trip() {
        let b = PluginBuffer::from_vec(b"hello".to_vec());
        // SAFETY: `b` was just made from a vector of this binary.
        assert_eq!(unsafe { b.as_slice() }, b"hello");
        // SAFETY: as above, and it is turned back only once.
        assert_eq!(unsafe { b.into_vec() }, b"hello");
        assert!(PluginBuffer::from_vec(Vec::new()).is_empty());
    }

    #[test]
    fn request_json_shape() {
        let input = ElectionInput {
            group: "g".into(),
            ..Default::default()
        };
        let req = RankRequest {
            schema: SCHEMA_VERSION,
            tiers: false,
            input: Cow::Borrowed(&input),
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["input"]["group"], "g");
        let back: RankRequest<'static> = serde_json::from_value(json).unwrap();
        assert_eq!(back.input.as_ref(), &input);
        let resp: RankResponse =
            serde_json::from_str(r#"{"schema":1,"ranking":[{"node":"a","seq":2}]}"#).unwrap();
        assert_eq!(resp.ranking, Some(vec![MemberId::new("a", 2)]));
        assert_eq!(resp.tiers, None);
    }
}
