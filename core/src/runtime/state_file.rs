//! The state file under `data_dir`: the engine's [`PersistedState`] (incarnation, terms and
//! votes) loaded at start and stored atomically on every `Action::Persist`.

use super::NodeError;
use crate::engine::PersistedState;
use std::path::{Path, PathBuf};

/// `data_dir/state.json`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

pub(super) fn load_state(path: &Path) -> Result<Option<PersistedState>, NodeError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let state: PersistedState =
                serde_json::from_slice(&bytes).map_err(|e| NodeError::StateFile {
                    path: path.to_path_buf(),
                    message: format!(
                        "corrupt or truncated ({e}); refusing to start with an unknown vote — inspect or remove the file"
                    ),
                })?;
            for (group, g) in &state.groups {
                let highest = g.term.max(g.vote.as_ref().map_or(0, |v| v.0));
                if crate::engine::next_term(highest).is_none() {
                    return Err(NodeError::StateFile {
                        path: path.to_path_buf(),
                        message: format!(
                            "group {group:?} has term {highest}, which cannot grow (terms stop below {}): no leader could ever be elected; the file is corrupt or was edited — inspect or remove it",
                            u64::MAX
                        ),
                    });
                }
            }
            Ok(Some(state))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::StateFile {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        }),
    }
}

/// Writes atomically: temp file, fsync, rename, fsync of the directory.
pub(super) fn store_state(path: &Path, state: &PersistedState) -> Result<(), NodeError> {
    use std::io::Write;
    let err = |e: std::io::Error| NodeError::StateFile {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| NodeError::StateFile {
        path: path.to_path_buf(),
        message: format!("cannot encode: {e}"),
    })?;
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
