//! Free loopback ports for local clusters (`baton demo`, the failover benchmark, tests).

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// Where the search below the ephemeral range starts.
const LOW: u16 = 10_000;

/// `n` distinct free loopback ports, below the kernel's ephemeral port range when it leaves
/// room (`/proc/sys/net/ipv4/ip_local_port_range`): a node restarted on its port must not find
/// it taken meanwhile by some outgoing connection, which the kernel gives an ephemeral port.
/// When no such port can be had (no room below the range, or every probe taken), the
/// remaining ports are any the kernel picks.
///
/// Every port was free when probed; the listeners are all held until the last is found (so the
/// ports differ) and closed on return, so another process may still take one before the
/// caller binds it. Successive calls in one process probe different ports, and the search
/// starts at a random offset, so parallel test binaries rarely meet.
///
/// # Errors
/// When the kernel cannot bind a loopback listener at all.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let mut held = Vec::with_capacity(n);
    if ephemeral_low >= LOW + 2_000 {
        let span = ephemeral_low - LOW;
        let mut rnd = [0u8; 2];
        // Without OS randomness the process id still spreads parallel processes apart.
        let start = match getrandom::fill(&mut rnd) {
            Ok(()) => u16::from_le_bytes(rnd),
            Err(_) => (std::process::id() as u16).wrapping_mul(97),
        };
        for _ in 0..(n * 20).max(200) {
            if held.len() == n {
                break;
            }
            let step = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = LOW + start.wrapping_add(step) % span;
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                held.push(l);
            }
        }
    }
    while held.len() < n {
        held.push(TcpListener::bind("127.0.0.1:0")?);
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let a = free_ports(5).unwrap();
        let b = free_ports(5).unwrap();
        assert_eq!(a.len(), 5);
        let all: std::collections::BTreeSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 10, "{a:?} {b:?}");
        for p in a {
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
