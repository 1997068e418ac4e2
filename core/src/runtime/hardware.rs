//! What this machine offers, detected: logical CPUs and (on Linux) physical memory.
//!
//! Detection reads the operating system (`/proc/meminfo`), so it lives with the runtime and
//! not beside the plain [`Hardware`] type that policy plugins link without tokio.

use crate::types::Hardware;

/// Detects CPUs (and, on Linux, memory) of this machine; no weight.
pub fn detect() -> Hardware {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    Hardware {
        cpus,
        memory_bytes: detect_memory_bytes().unwrap_or(0),
        weight: None,
    }
}

fn detect_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
