//! The plugin side of the ABI: the `extern "C"` entry points that
//! [`export_policy!`](crate::export_policy) puts into a plugin's table.
//!
//! Each is generic over the [`PluginPolicy`] and is instantiated in the plugin crate by the
//! macro. Each catches panics (`std::panic::catch_unwind`) and turns them into
//! [`STATUS_PANIC`] plus the panic message, so nothing ever unwinds into the host. You normally
//! never call these yourself.

use super::PluginPolicy;
use super::abi::{
    PluginBuffer, PluginHeader, PolicyTable, STATUS_ERROR, STATUS_OK, STATUS_PANIC, decode_request,
    encode_ranking, encode_tiers,
};
use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Builds the table for `P`, pointing at `name` (a NUL-terminated string made by [`c_name`]).
/// `const` so that the macro can put the table in a `static`.
pub const fn table<P: PluginPolicy>(name: &'static [u8]) -> PolicyTable {
    assert!(
        !name.is_empty() && name[name.len() - 1] == 0,
        "the name must be NUL-terminated"
    );
    PolicyTable {
        header: PluginHeader::CURRENT,
        name: name.as_ptr().cast(),
        create: Some(create::<P>),
        rank: Some(rank::<P>),
        free: Some(free),
        destroy: Some(destroy::<P>),
    }
}

/// Copies `name` into a NUL-terminated array of `N = name.len() + 1` bytes, at compile time.
/// Fails to compile when `name` contains a NUL byte.
pub const fn c_name<const N: usize>(name: &str) -> [u8; N] {
    let bytes = name.as_bytes();
    assert!(bytes.len() + 1 == N, "N must be name.len() + 1");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i] != 0, "a policy name must not contain a NUL byte");
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Writes `bytes` into `*out` if `out` is not null.
///
/// # Safety
///
/// `out` is null or valid for a write of a `PluginBuffer`.
unsafe fn write_out(out: *mut PluginBuffer, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    // SAFETY: `out` is non-null and, by this function's contract, valid for writes. The host
    // passes a buffer it owns and that holds nothing (so nothing is leaked by overwriting).
    unsafe { out.write(PluginBuffer::from_vec(bytes)) };
}

/// The message of a panic payload. Drops the payload here, in the plugin, with the plugin's
/// allocator, and forgets it instead if dropping it panics again.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    };
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
    message
}

/// Borrows `len` bytes at `ptr` (empty when `ptr` is null).
///
/// # Safety
///
/// `ptr` is null or points to `len` readable bytes that outlive the returned slice.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() {
        return &[];
    }
    // SAFETY: non-null here; the caller guarantees `len` readable bytes.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// The table's `create` for `P`: parses the config JSON and calls [`PluginPolicy::from_config`].
///
/// # Safety
///
/// See [`CreateFn`](super::abi::CreateFn): `config_json` points to `config_len` readable bytes,
/// `out_instance` and `out_error` are valid for writes (or null, which is refused).
pub unsafe extern "C" fn create<P: PluginPolicy>(
    config_json: *const u8,
    config_len: usize,
    out_instance: *mut *mut c_void,
    out_error: *mut PluginBuffer,
) -> i32 {
    if out_instance.is_null() {
        // SAFETY: `out_error` is null or valid for writes, per this function's contract.
        unsafe { write_out(out_error, b"create: out_instance is null".to_vec()) };
        return STATUS_ERROR;
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host passes `config_len` readable bytes that live for this call.
        let raw = unsafe { bytes(config_json, config_len) };
        let config = if raw.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(raw).map_err(|e| format!("config is not valid JSON: {e}"))?
        };
        P::from_config(config)
    }));
    match result {
        Ok(Ok(policy)) => {
            let instance = Box::into_raw(Box::new(policy)).cast::<c_void>();
            // SAFETY: `out_instance` is non-null (checked above) and valid for writes.
            unsafe { out_instance.write(instance) };
            STATUS_OK
        }
        Ok(Err(message)) => {
            // SAFETY: `out_error` is null or valid for writes, per this function's contract.
            unsafe { write_out(out_error, message.into_bytes()) };
            STATUS_ERROR
        }
        Err(payload) => {
            let message = panic_message(payload);
            // SAFETY: as above.
            unsafe { write_out(out_error, message.into_bytes()) };
            STATUS_PANIC
        }
    }
}

/// The table's `rank` for `P`: decodes a [`RankRequest`](super::abi::RankRequest), calls
/// [`LeaderPolicy::rank`] or [`LeaderPolicy::tiers`], encodes a
/// [`RankResponse`](super::abi::RankResponse) (postcard, both).
///
/// [`LeaderPolicy::rank`]: crate::LeaderPolicy::rank
/// [`LeaderPolicy::tiers`]: crate::LeaderPolicy::tiers
///
/// # Safety
///
/// See [`RankFn`](super::abi::RankFn): `instance` comes from this plugin's `create` for the same
/// `P` and has not been destroyed, `input` points to `input_len` readable bytes, `out` is
/// valid for writes (or null, which is refused).
pub unsafe extern "C" fn rank<P: PluginPolicy>(
    instance: *const c_void,
    input: *const u8,
    input_len: usize,
    out: *mut PluginBuffer,
) -> i32 {
    if out.is_null() {
        return STATUS_ERROR;
    }
    if instance.is_null() {
        // SAFETY: `out` is non-null and valid for writes.
        unsafe { write_out(out, b"rank: instance is null".to_vec()) };
        return STATUS_ERROR;
    }
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, String> {
        // SAFETY: `instance` was made by `create::<P>` from a `Box<P>` and is alive; `rank` only
        // takes a shared reference, which `P: Sync` allows from any number of threads.
        let policy = unsafe { &*instance.cast::<P>() };
        // SAFETY: the host passes `input_len` readable bytes that live for this call.
        let raw = unsafe { bytes(input, input_len) };
        let (election, tiers) = decode_request(raw)?;
        if tiers {
            encode_tiers(&policy.tiers(&election))
        } else {
            encode_ranking(&policy.rank(&election))
        }
    }));
    let (status, bytes) = match result {
        Ok(Ok(answer)) => (STATUS_OK, answer),
        Ok(Err(message)) => (STATUS_ERROR, message.into_bytes()),
        Err(payload) => (STATUS_PANIC, panic_message(payload).into_bytes()),
    };
    // SAFETY: `out` is non-null (checked above) and valid for writes.
    unsafe { write_out(out, bytes) };
    status
}

/// The table's `free`: takes back a buffer this plugin handed out.
///
/// # Safety
///
/// `buffer` was returned by this plugin's `create` or `rank` and is freed only once.
pub unsafe extern "C" fn free(buffer: PluginBuffer) {
    // SAFETY: by this function's contract the buffer is a `Vec<u8>` of this binary's allocator,
    // given back once. Dropping a `Vec<u8>` cannot panic.
    drop(unsafe { buffer.into_vec() });
}

/// The table's `destroy` for `P`: drops an instance.
///
/// # Safety
///
/// `instance` is null or was made by this plugin's `create::<P>` and is destroyed only once,
/// after every `rank` call on it has returned.
pub unsafe extern "C" fn destroy<P: PluginPolicy>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: `instance` is the `Box<P>` leaked by `create::<P>`, owned by the caller and handed
    // back exactly once.
    let policy = unsafe { Box::from_raw(instance.cast::<P>()) };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(policy))) {
        // A panicking destructor: nothing to report to, the host is letting go of it anyway.
        let _ = panic_message(payload);
    }
}
