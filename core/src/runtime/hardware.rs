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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HardwareConfig;

    #[test]
    fn detect_finds_at_least_one_cpu_and_on_linux_the_memory() {
        let hw = detect();
        assert!(hw.cpus >= 1, "{hw:?}");
        if cfg!(target_os = "linux") {
            assert!(hw.memory_bytes > 0, "{hw:?}");
        }
        assert_eq!(hw.weight, None, "detection never invents a weight");
    }

    #[test]
    fn configured_values_win_over_detected_ones() {
        let detected = Hardware {
            cpus: 8,
            memory_bytes: 1 << 30,
            weight: None,
        };
        let configured = HardwareConfig {
            cpus: Some(2),
            memory_bytes: None,
            weight: Some(1.5),
        };
        assert_eq!(
            configured.over(detected),
            Hardware {
                cpus: 2,
                memory_bytes: 1 << 30,
                weight: Some(1.5),
            }
        );
    }
}
