//! The C ABI between a policy plugin and its host, version [`ABI_VERSION`].
//!
//! Everything here is plain data: the `#[repr(C)]` [`PolicyTable`] a plugin exports, the
//! [`PluginBuffer`] bytes travel in, the status codes, and the payloads that cross in those
//! buffers: the config as JSON (once, at load), the rank request and answer ([`RankRequest`],
//! [`RankResponse`]) as [postcard](https://docs.rs/postcard) (every election), with the
//! functions that write and read them ([`encode_request`], [`decode_request`],
//! [`encode_ranking`], [`encode_tiers`], [`decode_response`]). The guest side ([`super::guest`], used by
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
//! 4. `rank(instance, input, len, &mut out)` ranks one [`RankRequest`] (postcard). On
//!    [`STATUS_OK`] `out` holds a [`RankResponse`] (postcard); on [`STATUS_ERROR`] or [`STATUS_PANIC`] a UTF-8
//!    message. `rank` may be called from several threads at once on the same instance.
//! 5. Every non-empty [`PluginBuffer`] the plugin hands out is given back exactly once to its
//!    `free` — memory is freed by the allocator that made it, never across the boundary.
//! 6. `destroy(instance)` is called once, when the host drops the policy; the library itself
//!    stays loaded (see the [module docs](super)).
//! 7. No entry point unwinds: each catches panics and reports [`STATUS_PANIC`]. (A plugin must
//!    therefore be built with `panic = "unwind"`, the default; with `panic = "abort"` a panic in
//!    the plugin aborts the host process.)

use crate::types::{
    Candidate, ElectionInput, GroupName, Hardware, Incarnation, MemberId, NodeId, Version,
};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::sync::Arc;

/// The first eight bytes of every [`PolicyTable`].
pub const ABI_MAGIC: [u8; 8] = *b"BATONPOL";

/// The version of the [`PolicyTable`] layout and of the calling contract, payload encodings
/// included. Bumped on any change a plugin built against an older baton-core could not follow.
///
/// - 1: rank requests and answers in JSON.
/// - 2: rank requests and answers in postcard ([`RankRequest`], [`RankResponse`]); the table
///   is unchanged. A JSON decode of the input was ~60 % of a plugin call at 100 candidates.
///   A version-1 plugin is refused at load: "ABI version 1, but this baton-core speaks ABI
///   version 2: rebuild the plugin …".
pub const ABI_VERSION: u32 = 2;

/// The version of the rank payloads ([`RankRequest`], [`RankResponse`]) within this ABI: their
/// first field, which each side reads before the rest and refuses by name when it differs.
/// postcard has no optional fields, so *any* change to a payload bumps it (or the ABI).
pub const SCHEMA_VERSION: u32 = 2;

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

/// `rank(instance, input, input_len, out) -> status`.
///
/// `input` holds a [`RankRequest`] (postcard); on [`STATUS_OK`] `*out` holds a [`RankResponse`],
/// otherwise a UTF-8 message. Must be safe to call concurrently on one instance.
pub type RankFn = unsafe extern "C" fn(
    instance: *const c_void,
    input: *const u8,
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

/// The table a plugin exports (ABI version 2; the same layout as version 1).
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

/// What the host sends to `rank`: the postcard encoding of this struct, its fields in this
/// order (postcard writes a struct as its fields one after the other: integers as varints,
/// strings and sequences as a varint length then the items, `Option` as a 0/1 byte then the
/// value, `bool` as one byte). [`encode_request`] writes it straight from an
/// [`ElectionInput`], without building this struct; [`decode_request`] reads it back into one.
///
/// Borrowed (`&str`) throughout: the plugin decodes it without copying, then builds the owned
/// [`ElectionInput`] its policy ranks. The services lists of the candidates are sent once each
/// ([`services`](Self::services)) and referred to by index, as the engine shares them between
/// the candidates of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankRequest<'a> {
    /// [`SCHEMA_VERSION`] of the sender. First, so that a plugin reads it before anything else
    /// and refuses another version by name ([`decode_request`]).
    pub schema: u32,
    /// When true, the host asks for [`LeaderPolicy::tiers`](crate::LeaderPolicy::tiers) instead
    /// of [`rank`](crate::LeaderPolicy::rank).
    pub tiers: bool,
    /// [`ElectionInput::group`].
    pub group: &'a str,
    /// [`ElectionInput::incumbent`].
    #[serde(borrow)]
    pub incumbent: Option<WireMember<'a>>,
    /// [`ElectionInput::leaders`]: `(group, node)` pairs, in group order.
    #[serde(borrow)]
    pub leaders: Vec<(&'a str, &'a str)>,
    /// The distinct [`Candidate::services`](crate::Candidate::services) lists.
    #[serde(borrow)]
    pub services: Vec<Vec<&'a str>>,
    /// [`ElectionInput::candidates`], in the input's order.
    #[serde(borrow)]
    pub candidates: Vec<WireCandidate<'a>>,
}

/// A [`MemberId`] on the wire: `(node, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMember<'a> {
    /// [`MemberId::node`].
    pub node: &'a str,
    /// [`MemberId::seq`].
    pub seq: u32,
}

impl WireMember<'_> {
    /// The owned member id.
    pub fn to_member(self) -> MemberId {
        MemberId::new(self.node, self.seq)
    }
}

impl<'a> From<&'a MemberId> for WireMember<'a> {
    fn from(m: &'a MemberId) -> Self {
        WireMember {
            node: m.node.as_str(),
            seq: m.seq,
        }
    }
}

/// A [`Candidate`](crate::Candidate) on the wire (its fields flattened, in this order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireCandidate<'a> {
    /// `member`.
    #[serde(borrow)]
    pub member: WireMember<'a>,
    /// `started_at_ms`.
    pub started_at_ms: u64,
    /// `incarnation`.
    pub incarnation: u64,
    /// `hardware.cpus`.
    pub cpus: u32,
    /// `hardware.memory_bytes`.
    pub memory_bytes: u64,
    /// `hardware.weight`.
    pub weight: Option<f64>,
    /// `labels`: `(key, value)` pairs in key order.
    #[serde(borrow)]
    pub labels: Vec<(&'a str, &'a str)>,
    /// `services`: an index into [`RankRequest::services`].
    pub services: u32,
    /// `leads`.
    pub leads: u64,
    /// `version`, as its semver text.
    pub version: Option<&'a str>,
}

/// What `rank` answers: the postcard encoding of this struct (see [`RankRequest`]), written by
/// [`encode_ranking`] / [`encode_tiers`] and read by [`decode_response`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankResponse<'a> {
    /// [`SCHEMA_VERSION`] of the plugin.
    pub schema: u32,
    /// The answer.
    #[serde(borrow)]
    pub answer: WireAnswer<'a>,
}

/// The answer inside a [`RankResponse`] (postcard: a varint variant index, then the value).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireAnswer<'a> {
    /// The candidates, best first (answer to a plain request).
    #[serde(borrow)]
    Ranking(Vec<WireMember<'a>>),
    /// The candidates in tiers of equally good ones, best tier first (answer to `tiers: true`).
    #[serde(borrow)]
    Tiers(Vec<Vec<WireMember<'a>>>),
}

/// A decoded answer, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// One total order.
    Ranking(Vec<MemberId>),
    /// Tiers, best first.
    Tiers(Vec<Vec<MemberId>>),
}

/// Encodes the request for `input` (`tiers`: ask for tiers instead of a ranking): the bytes
/// of a [`RankRequest`], written straight from the input.
pub fn encode_request(input: &ElectionInput, tiers: bool) -> Result<Vec<u8>, String> {
    // The distinct services lists, by content (the engine shares one list between the
    // candidates of a node; an input built by hand may not).
    let mut lists: Vec<&[GroupName]> = Vec::new();
    let mut seen: HashMap<&[GroupName], u32> = HashMap::new();
    let mut index: Vec<u32> = Vec::with_capacity(input.candidates.len());
    for c in &input.candidates {
        let s: &[GroupName] = &c.services;
        // Usually the previous candidate's list (the members of one node are adjacent).
        let at = match lists.last() {
            Some(last) if *last == s => (lists.len() - 1) as u32,
            _ => match seen.get(s) {
                Some(i) => *i,
                None => {
                    let i = u32::try_from(lists.len())
                        .map_err(|_| "more than 2^32 services lists".to_string())?;
                    lists.push(s);
                    seen.insert(s, i);
                    i
                }
            },
        };
        index.push(at);
    }
    let view = RequestView {
        input,
        tiers,
        lists: &lists,
        index: &index,
    };
    postcard::to_allocvec(&view).map_err(|e| format!("cannot encode the rank request: {e}"))
}

/// Decodes a request into the input to rank and whether tiers were asked for. Refuses another
/// [`SCHEMA_VERSION`] by name before reading further.
pub fn decode_request(bytes: &[u8]) -> Result<(ElectionInput, bool), String> {
    let (schema, _) = postcard::take_from_bytes::<u32>(bytes)
        .map_err(|e| format!("undecodable rank request: {e}"))?;
    if schema != SCHEMA_VERSION {
        return Err(format!(
            "rank request has schema version {schema}, this plugin understands {SCHEMA_VERSION}"
        ));
    }
    let req: RankRequest<'_> =
        postcard::from_bytes(bytes).map_err(|e| format!("undecodable rank request: {e}"))?;
    let services: Vec<Arc<[GroupName]>> = req
        .services
        .iter()
        .map(|l| l.iter().map(|g| GroupName::from(*g)).collect())
        .collect();
    let mut candidates = Vec::with_capacity(req.candidates.len());
    for c in req.candidates {
        let services = services.get(c.services as usize).cloned().ok_or_else(|| {
            format!(
                "rank request: candidate {}#{} names services list {} of {}",
                c.member.node,
                c.member.seq,
                c.services,
                services.len()
            )
        })?;
        let version = match c.version {
            None => None,
            Some(v) => Some(Version::parse(v).map_err(|e| {
                format!(
                    "rank request: candidate {}#{}: version {v:?}: {e}",
                    c.member.node, c.member.seq
                )
            })?),
        };
        candidates.push(Candidate {
            member: c.member.to_member(),
            started_at_ms: c.started_at_ms,
            incarnation: Incarnation(c.incarnation),
            hardware: Hardware {
                cpus: c.cpus,
                memory_bytes: c.memory_bytes,
                weight: c.weight,
            },
            labels: c
                .labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            services,
            leads: usize::try_from(c.leads).unwrap_or(usize::MAX),
            version,
        });
    }
    let input = ElectionInput {
        group: GroupName::from(req.group),
        candidates,
        incumbent: req.incumbent.map(WireMember::to_member),
        leaders: Arc::new(
            req.leaders
                .iter()
                .map(|(g, n)| (GroupName::from(*g), NodeId::new(*n)))
                .collect(),
        ),
    };
    Ok((input, req.tiers))
}

/// Encodes a ranking as a [`RankResponse`].
pub fn encode_ranking(ranking: &[MemberId]) -> Result<Vec<u8>, String> {
    let answer = WireAnswer::Ranking(ranking.iter().map(WireMember::from).collect());
    encode_response(answer)
}

/// Encodes tiers as a [`RankResponse`].
pub fn encode_tiers(tiers: &[Vec<MemberId>]) -> Result<Vec<u8>, String> {
    let answer = WireAnswer::Tiers(
        tiers
            .iter()
            .map(|t| t.iter().map(WireMember::from).collect())
            .collect(),
    );
    encode_response(answer)
}

fn encode_response(answer: WireAnswer<'_>) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(&RankResponse {
        schema: SCHEMA_VERSION,
        answer,
    })
    .map_err(|e| format!("cannot encode the ranking: {e}"))
}

/// Decodes a plugin's [`RankResponse`]. Refuses another [`SCHEMA_VERSION`] by name.
pub fn decode_response(bytes: &[u8]) -> Result<Answer, String> {
    let (schema, _) =
        postcard::take_from_bytes::<u32>(bytes).map_err(|e| format!("undecodable answer: {e}"))?;
    if schema != SCHEMA_VERSION {
        return Err(format!(
            "answer has schema version {schema}, expected {SCHEMA_VERSION}"
        ));
    }
    let resp: RankResponse<'_> =
        postcard::from_bytes(bytes).map_err(|e| format!("undecodable answer: {e}"))?;
    Ok(match resp.answer {
        WireAnswer::Ranking(r) => {
            Answer::Ranking(r.into_iter().map(WireMember::to_member).collect())
        }
        WireAnswer::Tiers(t) => Answer::Tiers(
            t.into_iter()
                .map(|tier| tier.into_iter().map(WireMember::to_member).collect())
                .collect(),
        ),
    })
}

/// [`RankRequest`]'s fields, serialized from the borrowed input without an intermediate copy.
struct RequestView<'a> {
    input: &'a ElectionInput,
    tiers: bool,
    lists: &'a [&'a [GroupName]],
    index: &'a [u32],
}

impl Serialize for RequestView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.input;
        let mut st = s.serialize_struct("RankRequest", 7)?;
        st.serialize_field("schema", &SCHEMA_VERSION)?;
        st.serialize_field("tiers", &self.tiers)?;
        st.serialize_field("group", i.group.as_str())?;
        st.serialize_field("incumbent", &i.incumbent.as_ref().map(WireMember::from))?;
        st.serialize_field(
            "leaders",
            &Pairs(i.leaders.iter().map(|(g, n)| (g.as_str(), n.as_str()))),
        )?;
        st.serialize_field("services", &Lists(self.lists))?;
        st.serialize_field(
            "candidates",
            &Seq(i
                .candidates
                .iter()
                .zip(self.index)
                .map(|(c, at)| CandidateView(c, *at))),
        )?;
        st.end()
    }
}

/// A [`WireCandidate`]'s fields, serialized from a [`Candidate`].
struct CandidateView<'a>(&'a Candidate, u32);

impl Serialize for CandidateView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (c, at) = (self.0, self.1);
        let mut st = s.serialize_struct("WireCandidate", 10)?;
        st.serialize_field("member", &WireMember::from(&c.member))?;
        st.serialize_field("started_at_ms", &c.started_at_ms)?;
        st.serialize_field("incarnation", &c.incarnation.0)?;
        st.serialize_field("cpus", &c.hardware.cpus)?;
        st.serialize_field("memory_bytes", &c.hardware.memory_bytes)?;
        st.serialize_field("weight", &c.hardware.weight)?;
        st.serialize_field(
            "labels",
            &Pairs(c.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )?;
        st.serialize_field("services", &at)?;
        st.serialize_field("leads", &(c.leads as u64))?;
        // Rare: the allocation of a version's text is not worth a borrowed form.
        st.serialize_field("version", &c.version.as_ref().map(|v| v.to_string()))?;
        st.end()
    }
}

/// A sequence of `(&str, &str)` tuples from an iterator (cloned to serialize: `serde` takes
/// `&self`).
struct Pairs<I>(I);

impl<'a, I: Iterator<Item = (&'a str, &'a str)> + Clone> Serialize for Pairs<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// The distinct services lists as sequences of strings.
struct Lists<'a>(&'a [&'a [GroupName]]);

impl Serialize for Lists<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|l| Seq(l.iter().map(GroupName::as_str))))
    }
}

/// Any cloneable iterator of serializable items, as a sequence.
struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
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

    fn sample() -> ElectionInput {
        let shared: Arc<[GroupName]> = ["g".into(), "h".into()].into();
        let mut a = Candidate::bare(MemberId::new("a", 0));
        a.labels.insert("zone".into(), "eu-1".into());
        a.services = shared.clone();
        a.hardware.weight = Some(2.5);
        a.leads = 3;
        let mut a1 = Candidate::bare(MemberId::new("a", 1));
        a1.services = shared;
        let mut b = Candidate::bare(MemberId::new("b", 0));
        b.services = ["g".into()].into();
        b.version = Some(Version::new(1, 4, 2));
        b.started_at_ms = 17;
        b.incarnation = Incarnation(99);
        ElectionInput {
            group: "g".into(),
            candidates: vec![a, a1, b],
            incumbent: Some(MemberId::new("b", 0)),
            leaders: Arc::new([("h".into(), NodeId::new("a"))].into_iter().collect()),
        }
    }

    #[test]
    fn a_request_round_trips_and_matches_its_documented_struct() {
        let input = sample();
        let bytes = encode_request(&input, true).unwrap();
        let (back, tiers) = decode_request(&bytes).unwrap();
        assert!(tiers);
        assert_eq!(back, input);
        // The services list of a#0 and a#1 is sent once, and shared again after decoding.
        let req: RankRequest<'_> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(req.services, vec![vec!["g", "h"], vec!["g"]]);
        assert_eq!(
            req.candidates
                .iter()
                .map(|c| c.services)
                .collect::<Vec<_>>(),
            vec![0, 0, 1]
        );
        assert!(Arc::ptr_eq(
            &back.candidates[0].services,
            &back.candidates[1].services
        ));
        assert_eq!(req.candidates[2].version, Some("1.4.2"));
        assert_eq!(req.schema, SCHEMA_VERSION);
        // The derive of the documented struct writes the same bytes.
        assert_eq!(postcard::to_allocvec(&req).unwrap(), bytes);
    }

    #[test]
    fn another_schema_is_refused_by_name() {
        let mut bytes = encode_request(&sample(), false).unwrap();
        bytes[0] = 1; // schema 1: a varint of one byte
        let e = decode_request(&bytes).unwrap_err();
        assert_eq!(
            e,
            format!("rank request has schema version 1, this plugin understands {SCHEMA_VERSION}")
        );
        let mut answer = encode_ranking(&[MemberId::new("a", 0)]).unwrap();
        answer[0] = 7;
        let e = decode_response(&answer).unwrap_err();
        assert!(e.contains("schema version 7, expected"), "{e}");
        // Garbage and truncations are errors, never panics.
        assert!(decode_request(&[]).is_err());
        let good = encode_request(&sample(), false).unwrap();
        for n in 1..good.len() {
            assert!(decode_request(&good[..n]).is_err(), "truncated at {n}");
        }
        assert!(decode_response(&[SCHEMA_VERSION as u8, 9]).is_err());
    }

    #[test]
    fn answers_round_trip() {
        let r = vec![MemberId::new("b", 0), MemberId::new("a", 2)];
        assert_eq!(
            decode_response(&encode_ranking(&r).unwrap()).unwrap(),
            Answer::Ranking(r.clone())
        );
        let t = vec![vec![MemberId::new("b", 0)], r];
        assert_eq!(
            decode_response(&encode_tiers(&t).unwrap()).unwrap(),
            Answer::Tiers(t)
        );
    }
}
