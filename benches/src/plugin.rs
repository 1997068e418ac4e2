//! Finding (building if needed) the example plugin, `examples/custom-policy` as a cdylib.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of `benches/`).
pub fn workspace_root() -> &'static Path {
    // `CARGO_MANIFEST_DIR` is benches/, which always has a parent.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// The path of `libcustom_policy.so`, as a user would build it:
/// `cargo build [--release] -p custom-policy` (so baton-core without default features — the
/// cdylib a user ships, not one with this crate's features unified in).
///
/// `BATON_BENCH_PLUGIN` overrides the path. Otherwise the plugin is built with the `cargo`
/// that runs the bench (`CARGO` is set by cargo for bench and test runs), into `target_dir`,
/// in the release profile for optimised runs and in the dev profile for debug builds (what
/// `cargo test --benches` runs). A no-op build takes well under a second.
pub fn custom_policy(target_dir: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("BATON_BENCH_PLUGIN") {
        return Ok(PathBuf::from(p));
    }
    let release = !cfg!(debug_assertions);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "-p", "custom-policy", "--target-dir"])
        .arg(target_dir);
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let profile = if release { "release" } else { "debug" };
    Ok(target_dir.join(profile).join(format!(
        "{}custom_policy{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )))
}
