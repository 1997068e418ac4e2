//! The host side (feature `plugin-host`): load a plugin with libloading, check it, and wrap it
//! as an ordinary [`LeaderPolicy`].

use super::abi::{
    ABI_MAGIC, ABI_VERSION, Answer, DestroyFn, EntryFn, FreeFn, PluginBuffer, PluginHeader,
    PolicyTable, RankFn, STATUS_OK, STATUS_PANIC, SYMBOL, SYMBOL_C, decode_response,
    encode_request,
};
use crate::config::PluginSpec;
use crate::policy::{ByMemberId, LeaderPolicy};
use crate::types::{ElectionInput, MemberId};
use std::collections::BTreeSet;
use std::ffi::{CStr, c_void};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The baton-core version a mismatched plugin should be rebuilt against.
const CORE_MAJOR_MINOR: &str = concat!(
    env!("CARGO_PKG_VERSION_MAJOR"),
    ".",
    env!("CARGO_PKG_VERSION_MINOR")
);

/// Why a plugin could not be loaded, or why one call into it failed. Every message starts with
/// the plugin's path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// No file at the path.
    #[error("policy plugin {}: no such file", path.display())]
    NotFound {
        /// The plugin path.
        path: PathBuf,
    },
    /// The dynamic loader refused the file (not a shared library, wrong architecture, missing
    /// dependency, …).
    #[error("policy plugin {}: cannot load: {message}", path.display())]
    Load {
        /// The plugin path.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// A shared library, but not a baton policy plugin: no `baton_policy_v1` symbol, wrong magic
    /// bytes, a truncated table or a missing entry point.
    #[error("policy plugin {}: not a baton policy plugin: {reason}", path.display())]
    NotAPlugin {
        /// The plugin path.
        path: PathBuf,
        /// What was missing or wrong.
        reason: String,
    },
    /// A baton plugin built against a baton-core with another ABI version.
    #[error(
        "policy plugin {}: ABI version {found}, but this baton-core speaks ABI version {expected}: rebuild the plugin against baton-core {}",
        path.display(),
        CORE_MAJOR_MINOR
    )]
    AbiMismatch {
        /// The plugin path.
        path: PathBuf,
        /// The plugin's ABI version.
        found: u32,
        /// This host's ABI version ([`ABI_VERSION`]).
        expected: u32,
    },
    /// The plugin's `create` refused its config (the message is the plugin's own), or the config
    /// cannot be expressed in JSON.
    #[error("policy plugin {}: create failed: {message}", path.display())]
    CreateFailed {
        /// The plugin path.
        path: PathBuf,
        /// The plugin's message.
        message: String,
    },
    /// The plugin panicked (in `create` or `rank`); the panic was caught inside the plugin.
    #[error("policy plugin {}: panicked: {message}", path.display())]
    Panicked {
        /// The plugin path.
        path: PathBuf,
        /// The panic message.
        message: String,
    },
    /// `rank` answered, but not with a permutation of the candidates.
    #[error("policy plugin {}: bad ranking: {reason}", path.display())]
    BadRanking {
        /// The plugin path.
        path: PathBuf,
        /// Which member was unknown, repeated or missing.
        reason: String,
    },
    /// `rank` returned an error status or an answer that is not a [`RankResponse`].
    #[error("policy plugin {}: rank failed: {message}", path.display())]
    RankFailed {
        /// The plugin path.
        path: PathBuf,
        /// The plugin's message, or what was wrong with its answer.
        message: String,
    },
}

impl PluginError {
    /// The path of the plugin the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PluginError::NotFound { path }
            | PluginError::Load { path, .. }
            | PluginError::NotAPlugin { path, .. }
            | PluginError::AbiMismatch { path, .. }
            | PluginError::CreateFailed { path, .. }
            | PluginError::Panicked { path, .. }
            | PluginError::BadRanking { path, .. }
            | PluginError::RankFailed { path, .. } => path,
        }
    }
}

/// Loads the plugin of a config's `policy = { plugin = "…", config = { … } }`.
///
/// This is what a by-name policy table calls for [`PolicySpec::Plugin`]:
/// `PolicySpec::Plugin(spec) => Box::new(baton_core::plugin::load_spec(spec)?)`.
///
/// [`PolicySpec::Plugin`]: crate::config::PolicySpec::Plugin
pub fn load_spec(spec: &PluginSpec) -> Result<LoadedPolicy, PluginError> {
    load_policy(&spec.plugin, spec.config.as_ref())
}

/// Loads the policy plugin at `path` and builds one policy from `config` (a TOML value, as in
/// the node's config file; `None` is passed to the plugin as JSON `null`).
///
/// Checks, in order: the file exists, the dynamic loader accepts it, it exports
/// `baton_policy_v1`, the table's magic, ABI version and size, the entry points; then calls the
/// plugin's `create`. Each failure is its own [`PluginError`]. The library stays loaded for the
/// rest of the process, whatever the outcome (see the [module docs](super)).
///
/// A relative `path` is taken relative to the current directory (never searched for in the
/// system's library path, which is what `dlopen` would do with a bare file name).
pub fn load_policy(path: &Path, config: Option<&toml::Value>) -> Result<LoadedPolicy, PluginError> {
    let json = match config {
        None => serde_json::Value::Null,
        Some(value) => toml_to_json(value).map_err(|message| PluginError::CreateFailed {
            path: path.to_path_buf(),
            message: format!("config cannot be passed as JSON: {message}"),
        })?,
    };
    load_policy_json(path, &json)
}

/// [`load_policy`] with the config already in JSON.
pub fn load_policy_json(
    path: &Path,
    config: &serde_json::Value,
) -> Result<LoadedPolicy, PluginError> {
    let table = open(path)?;
    let path = path.to_path_buf();
    let not_a_plugin = |reason: &str| PluginError::NotAPlugin {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let (Some(create), Some(rank), Some(free), Some(destroy)) =
        (table.create, table.rank, table.free, table.destroy)
    else {
        return Err(not_a_plugin("the table has a null entry point"));
    };
    if table.name.is_null() {
        return Err(not_a_plugin("the table has no name"));
    }
    // SAFETY: `name` is non-null and, per the ABI, a NUL-terminated string in the plugin's
    // static data, which stays mapped because the library is never unloaded.
    let name = unsafe { CStr::from_ptr(table.name) }
        .to_string_lossy()
        .into_owned();

    let config = serde_json::to_vec(config).map_err(|e| PluginError::CreateFailed {
        path: path.clone(),
        message: format!("config cannot be encoded as JSON: {e}"),
    })?;
    let mut instance: *mut c_void = std::ptr::null_mut();
    let mut error = PluginBuffer::EMPTY;
    // SAFETY: `create` comes from a table whose magic, version and size were checked; we pass
    // `config.len()` readable bytes and two out-pointers to live locals, as the ABI requires.
    let status = unsafe { create(config.as_ptr(), config.len(), &mut instance, &mut error) };
    // SAFETY: `error` is empty or was filled by this plugin's `create`, and is freed only here.
    let message = unsafe { take_message(free, error) };
    match status {
        STATUS_OK if !instance.is_null() => Ok(LoadedPolicy {
            name,
            path,
            instance,
            rank_fn: rank,
            free_fn: free,
            destroy_fn: destroy,
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }),
        STATUS_OK => Err(PluginError::CreateFailed {
            path,
            message: "create reported success but returned no instance".into(),
        }),
        STATUS_PANIC => Err(PluginError::Panicked { path, message }),
        _ => Err(PluginError::CreateFailed { path, message }),
    }
}

/// Loads the library, finds the entry point and checks the table. Leaks the library.
fn open(path: &Path) -> Result<&'static PolicyTable, PluginError> {
    let owned = || path.to_path_buf();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PluginError::NotFound { path: owned() });
        }
        Err(e) => {
            return Err(PluginError::Load {
                path: owned(),
                message: e.to_string(),
            });
        }
        Ok(m) if m.is_dir() => {
            return Err(PluginError::Load {
                path: owned(),
                message: "is a directory".into(),
            });
        }
        Ok(_) => {}
    }
    // A bare file name would make dlopen search the library path instead of opening this file.
    let absolute = std::path::absolute(path).map_err(|e| PluginError::Load {
        path: owned(),
        message: e.to_string(),
    })?;
    // SAFETY: loading runs the library's initializers. Plugins are trusted code (module docs):
    // the user named this file as their policy, so running it is what they asked for.
    let library =
        unsafe { libloading::Library::new(&absolute) }.map_err(|e| PluginError::Load {
            path: owned(),
            message: with_sources(&e),
        })?;
    // Never unloaded, not even when it turns out not to be a plugin: its initializers have run
    // and may have left state pointing into it (see the module docs).
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    let not_a_plugin = |reason: String| PluginError::NotAPlugin {
        path: owned(),
        reason,
    };
    // SAFETY: we only look the symbol up here, declaring it with the entry point type the ABI
    // fixes for this name; it is called below.
    let entry: EntryFn = match unsafe { library.get::<EntryFn>(SYMBOL_C) } {
        Ok(symbol) => *symbol,
        Err(_) => {
            return Err(not_a_plugin(format!(
                "no `{SYMBOL}` symbol (a plugin crate is a cdylib calling `baton_core::export_policy!`)"
            )));
        }
    };
    // SAFETY: the symbol `baton_policy_v1` is, by the ABI, a function with no arguments that
    // returns a pointer to a static table. (A library exporting this name with another meaning is
    // not something the trust model guards against.)
    let table = unsafe { entry() };
    if table.is_null() {
        return Err(not_a_plugin(format!("`{SYMBOL}` returned null")));
    }
    if !table.cast::<PluginHeader>().is_aligned() {
        return Err(not_a_plugin(format!(
            "`{SYMBOL}` returned a misaligned table"
        )));
    }
    // SAFETY: non-null and aligned; every ABI version's table starts with a `PluginHeader`, and
    // the table is static data of a library that is never unloaded. We read only the header
    // until it is checked.
    let header: PluginHeader = unsafe { table.cast::<PluginHeader>().read() };
    check_header(path, header)?;
    // SAFETY: magic, version and size say this is a table of our version of at least our size, in
    // static memory that stays mapped for the rest of the process.
    Ok(unsafe { &*table })
}

/// Checks a table's header: the magic bytes, then the ABI version (a plugin of another
/// version, older or newer, is refused naming both), then the size.
fn check_header(path: &Path, header: PluginHeader) -> Result<(), PluginError> {
    let not_a_plugin = |reason: String| PluginError::NotAPlugin {
        path: path.to_path_buf(),
        reason,
    };
    if header.magic != ABI_MAGIC {
        return Err(not_a_plugin(format!(
            "bad magic bytes {:?} (expected {:?})",
            header.magic.escape_ascii().to_string(),
            ABI_MAGIC.escape_ascii().to_string()
        )));
    }
    if header.abi_version != ABI_VERSION {
        return Err(PluginError::AbiMismatch {
            path: path.to_path_buf(),
            found: header.abi_version,
            expected: ABI_VERSION,
        });
    }
    let expected = std::mem::size_of::<PolicyTable>();
    if (header.struct_size as usize) < expected {
        return Err(not_a_plugin(format!(
            "the table is {} bytes, an ABI version {ABI_VERSION} table is at least {expected}",
            header.struct_size
        )));
    }
    Ok(())
}

/// An error and its sources, `: `-separated: libloading's `dlopen failed` alone hides the
/// loader's own message (`invalid ELF header`, a missing dependency), which is its source.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Reads a plugin's message buffer into a `String` and gives the buffer back to the plugin.
///
/// # Safety
///
/// `buffer` is empty or was returned by the plugin whose `free` this is, and is not used again.
unsafe fn take_message(free: FreeFn, buffer: PluginBuffer) -> String {
    if buffer.is_empty() {
        return String::new();
    }
    // SAFETY: a non-empty buffer from the plugin points to `len` initialised bytes until freed.
    let message = String::from_utf8_lossy(unsafe { buffer.as_slice() }).into_owned();
    // SAFETY: the buffer came from this plugin and is freed exactly once, here.
    unsafe { free(buffer) };
    message
}

/// Converts a TOML value to JSON. Datetimes become their TOML text; NaN and infinite floats,
/// which JSON cannot express, are refused.
fn toml_to_json(value: &toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| format!("the float {f} has no JSON form"))?,
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => {
            J::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => J::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// A loaded plugin policy, usable like any other [`LeaderPolicy`].
///
/// [`rank`](LeaderPolicy::rank) and [`tiers`](LeaderPolicy::tiers) never fail and never panic
/// because of the plugin. When the plugin panics, returns an error, answers something that is
/// not JSON of the expected schema, or returns a ranking that is not a permutation of the
/// candidates, the call is logged (`tracing` warning), counted ([`error_count`](Self::error_count),
/// [`last_error`](Self::last_error)) and answered by the **fallback rule: member-id order**
/// ([`ByMemberId`]). For `tiers` the fallback is a single tier holding every candidate — "no
/// preference" — which flattens to member-id order on its own and, inside a chain, leaves the
/// decision to the chain's next policy.
///
/// [`try_rank`](Self::try_rank) and [`try_tiers`](Self::try_tiers) return the error instead.
///
/// Dropping it destroys the plugin's instance; the library stays loaded.
pub struct LoadedPolicy {
    name: String,
    path: PathBuf,
    instance: *mut c_void,
    rank_fn: RankFn,
    free_fn: FreeFn,
    destroy_fn: DestroyFn,
    errors: AtomicU64,
    last_error: Mutex<Option<PluginError>>,
}

// SAFETY: the instance is only ever used through `rank`, which the ABI requires to be callable
// from any thread, concurrently (plugins made with `export_policy!` hold a `P: Send + Sync`),
// and through `destroy`, called once from `Drop` with exclusive access. The function pointers
// are code in a library that is never unloaded.
unsafe impl Send for LoadedPolicy {}
// SAFETY: see `Send`: `&LoadedPolicy` only allows `rank`, which is thread-safe by the ABI; the
// error bookkeeping is an atomic and a mutex.
unsafe impl Sync for LoadedPolicy {}

/// Which question `LoadedPolicy::call` puts to the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    /// One total order of the candidates.
    Ranking,
    /// Tiers of equally good candidates.
    Tiers,
}

impl LoadedPolicy {
    /// The plugin's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many calls failed and fell back to member-id order since the policy was loaded.
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The most recent failure of a call, if any.
    pub fn last_error(&self) -> Option<PluginError> {
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Ranks `input` with the plugin, checking that the answer is a permutation of the
    /// candidates. No fallback, no logging, no counting.
    pub fn try_rank(&self, input: &ElectionInput) -> Result<Vec<MemberId>, PluginError> {
        match self.call(input, Ask::Ranking)? {
            Answer::Ranking(ranking) => {
                check_permutation(input, ranking.iter()).map_err(|r| self.bad_ranking(r))?;
                Ok(ranking)
            }
            Answer::Tiers(_) => Err(self.rank_failed("answered tiers to a ranking request")),
        }
    }

    /// [`LeaderPolicy::tiers`] of the plugin, checked like [`try_rank`](Self::try_rank) (empty
    /// tiers are dropped). No fallback, no logging, no counting.
    pub fn try_tiers(&self, input: &ElectionInput) -> Result<Vec<Vec<MemberId>>, PluginError> {
        match self.call(input, Ask::Tiers)? {
            Answer::Tiers(mut tiers) => {
                tiers.retain(|tier| !tier.is_empty());
                check_permutation(input, tiers.iter().flatten())
                    .map_err(|r| self.bad_ranking(r))?;
                Ok(tiers)
            }
            Answer::Ranking(_) => Err(self.rank_failed("answered a ranking to a tiers request")),
        }
    }

    fn call(&self, input: &ElectionInput, ask: Ask) -> Result<Answer, PluginError> {
        let request = encode_request(input, ask == Ask::Tiers).map_err(|e| self.rank_failed(e))?;
        let mut out = PluginBuffer::EMPTY;
        // SAFETY: `rank` and `instance` come from a checked table and a successful `create` of the
        // same plugin, not yet destroyed (we hold `&self`); the input is `request.len()` readable
        // bytes that outlive the call and `out` is a live local.
        let status =
            unsafe { (self.rank_fn)(self.instance, request.as_ptr(), request.len(), &mut out) };
        let out = Owned {
            buffer: out,
            free: self.free_fn,
        };
        // SAFETY: `out` holds an empty buffer or one filled by this plugin's `rank`, valid until
        // `Owned` frees it when dropped at the end of this function.
        let bytes = unsafe { out.buffer.as_slice() };
        match status {
            STATUS_OK => {}
            STATUS_PANIC => {
                return Err(PluginError::Panicked {
                    path: self.path.clone(),
                    message: String::from_utf8_lossy(bytes).into_owned(),
                });
            }
            status => {
                return Err(self.rank_failed(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(bytes)
                )));
            }
        }
        decode_response(bytes).map_err(|e| self.rank_failed(e))
    }

    fn rank_failed(&self, message: impl Into<String>) -> PluginError {
        PluginError::RankFailed {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn bad_ranking(&self, reason: String) -> PluginError {
        PluginError::BadRanking {
            path: self.path.clone(),
            reason,
        }
    }

    fn record(&self, input: &ElectionInput, error: PluginError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "baton_core::plugin",
            plugin = %self.name,
            group = %input.group,
            %error,
            "policy plugin failed; falling back to member-id order"
        );
        *self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
    }
}

/// A buffer of the plugin's, given back to it when dropped.
struct Owned {
    buffer: PluginBuffer,
    free: FreeFn,
}

impl Drop for Owned {
    fn drop(&mut self) {
        let buffer = std::mem::replace(&mut self.buffer, PluginBuffer::EMPTY);
        if !buffer.is_empty() {
            // SAFETY: the buffer was filled by the plugin whose `free` this is; it is freed once,
            // here, and replaced by an empty one.
            unsafe { (self.free)(buffer) };
        }
    }
}

/// Checks that `ranking` names every candidate of `input` exactly once.
fn check_permutation<'a>(
    input: &ElectionInput,
    ranking: impl Iterator<Item = &'a MemberId>,
) -> Result<(), String> {
    let candidates: BTreeSet<&MemberId> = input.candidates.iter().map(|c| &c.member).collect();
    let mut seen = BTreeSet::new();
    for member in ranking {
        if !candidates.contains(member) {
            return Err(format!("{member} is not a candidate"));
        }
        if !seen.insert(member) {
            return Err(format!("{member} appears more than once"));
        }
    }
    if let Some(missing) = candidates.iter().find(|m| !seen.contains(**m)) {
        return Err(format!(
            "{missing} is missing ({} of {} candidates ranked)",
            seen.len(),
            candidates.len()
        ));
    }
    Ok(())
}

impl LeaderPolicy for LoadedPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        match self.try_rank(input) {
            Ok(ranking) => ranking,
            Err(error) => {
                self.record(input, error);
                ByMemberId.rank(input)
            }
        }
    }

    fn tiers(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        match self.try_tiers(input) {
            Ok(tiers) => tiers,
            Err(error) => {
                self.record(input, error);
                let all = ByMemberId.rank(input);
                if all.is_empty() { vec![] } else { vec![all] }
            }
        }
    }
}

impl Drop for LoadedPolicy {
    fn drop(&mut self) {
        // SAFETY: `instance` came from this plugin's `create`, is destroyed once, here, with
        // exclusive access (`&mut self`), so no `rank` call is running on it.
        unsafe { (self.destroy_fn)(self.instance) };
    }
}

impl fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("errors", &self.error_count())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::input;

    #[test]
    fn permutation_check_names_the_culprit() {
        let inp = input(&["a", "b"]);
        let (a, b, z) = (
            MemberId::new("a", 0),
            MemberId::new("b", 0),
            MemberId::new("z", 0),
        );
        assert!(check_permutation(&inp, [&b, &a].into_iter()).is_ok());
        let e = check_permutation(&inp, [&a, &a].into_iter()).unwrap_err();
        assert!(e.contains("a#0 appears more than once"), "{e}");
        let e = check_permutation(&inp, [&a, &z].into_iter()).unwrap_err();
        assert!(e.contains("z#0 is not a candidate"), "{e}");
        let e = check_permutation(&inp, [&a].into_iter()).unwrap_err();
        assert!(e.contains("b#0 is missing"), "{e}");
    }

    #[test]
    fn toml_config_becomes_json() {
        let t: toml::Value = toml::from_str(
            "zone = \"eu-1\"\nn = 3\nx = 1.5\nok = true\nl = [1, \"a\"]\nwhen = 1979-05-27\n[sub]\nk = \"v\"\n",
        )
        .unwrap();
        let j = toml_to_json(&t).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "zone": "eu-1", "n": 3, "x": 1.5, "ok": true, "l": [1, "a"],
                "when": "1979-05-27", "sub": { "k": "v" }
            })
        );
        assert!(toml_to_json(&toml::Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn errors_name_the_path() {
        let e = PluginError::AbiMismatch {
            path: "/x/libp.so".into(),
            found: 2,
            expected: 1,
        };
        let s = e.to_string();
        assert!(
            s.starts_with("policy plugin /x/libp.so: ABI version 2"),
            "{s}"
        );
        assert!(s.contains(&format!(
            "rebuild the plugin against baton-core {CORE_MAJOR_MINOR}"
        )));
        assert_eq!(e.path(), Path::new("/x/libp.so"));
    }

    #[test]
    fn missing_file_is_not_found() {
        let e = load_policy(Path::new("/nonexistent/libnothing.so"), None).unwrap_err();
        assert_eq!(
            e,
            PluginError::NotFound {
                path: "/nonexistent/libnothing.so".into()
            }
        );
    }

    #[test]
    fn a_plugin_of_the_json_abi_is_refused_naming_both_versions() {
        let path = Path::new("/x/libold.so");
        let v1 = PluginHeader {
            abi_version: 1,
            ..PluginHeader::CURRENT
        };
        let e = check_header(path, v1).unwrap_err();
        assert_eq!(
            e,
            PluginError::AbiMismatch {
                path: path.into(),
                found: 1,
                expected: ABI_VERSION
            }
        );
        assert!(
            e.to_string()
                .contains("ABI version 1, but this baton-core speaks ABI version 2"),
            "{e}"
        );
        assert_eq!(check_header(path, PluginHeader::CURRENT), Ok(()));
        let small = PluginHeader {
            struct_size: 8,
            ..PluginHeader::CURRENT
        };
        assert!(matches!(
            check_header(path, small),
            Err(PluginError::NotAPlugin { .. })
        ));
    }
}
