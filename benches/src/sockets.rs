//! Bytes on the wire between node processes, from the kernel's own counters of every TCP
//! socket (`ss -tinpH`: `bytes_sent`, with the owning process of each socket).
//!
//! What it counts: TCP payload bytes each node process handed to the kernel and the kernel
//! sent (`tcpi_bytes_sent`, retransmissions included) — frames, their length prefixes, the
//! authentication seal and TLS records when TLS is on. Not counted: IP and TCP headers
//! (about 52 bytes a segment on loopback), and bytes of sockets that closed during the window
//! (the count of those is reported, see [`Traffic::closed`]).
//!
//! A socket is put to a pair of nodes by its owner (the pid `ss -p` names) and its far end:
//! the node listening on the peer port, else the node owning the socket at the other end
//! of the connection (the dialer's ephemeral port).

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

/// One established TCP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    /// The first process `ss -p` names as its owner.
    pub pid: u32,
    /// Local address (`127.0.0.1:40123`).
    pub local: String,
    /// Peer address.
    pub peer: String,
    /// `bytes_sent` (0 when `ss` prints none).
    pub bytes_sent: u64,
}

/// Every established TCP socket of this machine's processes that `ss` may show (those of this
/// user), with their counters.
pub fn snapshot() -> Result<Vec<Socket>> {
    let out = std::process::Command::new("ss")
        .args(["-tinpH"])
        .output()
        .context("cannot run `ss` (iproute2) to read the sockets' byte counters")?;
    if !out.status.success() {
        bail!(
            "`ss -tinpH` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_ss(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `ss -tinpH` output: a line per socket (`STATE RECV-Q SEND-Q LOCAL PEER users:(…)`)
/// followed by an indented line of TCP info. Keeps established sockets that name a process.
pub fn parse_ss(text: &str) -> Vec<Socket> {
    let mut out: Vec<Socket> = Vec::new();
    // Whether the last socket line was kept (its info line follows).
    let mut open = false;
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            if open && let Some(s) = out.last_mut() {
                s.bytes_sent = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("bytes_sent:")?.parse().ok())
                    .unwrap_or(0);
            }
            continue;
        }
        open = false;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0] != "ESTAB" {
            continue;
        }
        let pid = f[5..].iter().find_map(|u| {
            let at = u.find("pid=")? + 4;
            let digits: String = u[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
        if let Some(pid) = pid {
            out.push(Socket {
                pid,
                local: f[3].to_string(),
                peer: f[4].to_string(),
                bytes_sent: 0,
            });
            open = true;
        }
    }
    out
}

/// The port of `addr` (`127.0.0.1:40123`, `[::1]:40123`).
fn port(addr: &str) -> Option<u16> {
    addr.rsplit_once(':')?.1.parse().ok()
}

/// What the nodes sent each other between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes each node sent to other nodes, by index.
    pub sent: Vec<u64>,
    /// Bytes sent both ways between node `a` and node `b` (`a < b`); a pair that exchanged
    /// nothing has no entry.
    pub pairs: BTreeMap<(usize, usize), u64>,
    /// Sockets of the nodes that were open at the first snapshot and gone at the second
    /// (their bytes in between are not counted).
    pub closed: usize,
    /// Sockets of the nodes whose far end is no node (an observer, another program).
    pub other: usize,
}

/// The traffic between nodes `pids[i]` (listening on `ports[i]`) from `before` to `after`.
pub fn traffic(before: &[Socket], after: &[Socket], pids: &[u32], ports: &[u16]) -> Traffic {
    let owner = |s: &Socket| pids.iter().position(|&p| p == s.pid);
    let key = |s: &Socket| (s.pid, s.local.clone(), s.peer.clone());
    let earlier: BTreeMap<_, u64> = before
        .iter()
        .filter(|s| owner(s).is_some())
        .map(|s| (key(s), s.bytes_sent))
        .collect();
    let mut t = Traffic {
        sent: vec![0; pids.len()],
        ..Traffic::default()
    };
    let mut seen = 0;
    for s in after {
        let Some(a) = owner(s) else { continue };
        let far = port(&s.peer)
            .and_then(|p| ports.iter().position(|&q| q == p))
            .or_else(|| {
                let other_end = after
                    .iter()
                    .find(|o| o.local == s.peer && o.peer == s.local)?;
                owner(other_end)
            });
        let sent = match earlier.get(&key(s)) {
            Some(b) => {
                seen += 1;
                s.bytes_sent.saturating_sub(*b)
            }
            None => s.bytes_sent,
        };
        match far {
            Some(b) if b != a => {
                t.sent[a] += sent;
                *t.pairs.entry((a.min(b), a.max(b))).or_default() += sent;
            }
            _ => t.other += 1,
        }
    }
    t.closed = earlier.len() - seen;
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const SS: &str = "\
ESTAB 0      0      127.0.0.1:42044 127.0.0.1:5000 users:((\"baton\",pid=11,fd=9))
\t bbr wscale:10,10 rto:204 mss:35328 cwnd:11 bytes_sent:1000 bytes_acked:1001 segs_out:3
ESTAB 0      0      127.0.0.1:5000 127.0.0.1:42044 users:((\"baton\",pid=22,fd=5))
\t bbr wscale:10,10 rto:200 bytes_received:1000 segs_out:1 segs_in:3
ESTAB 0      0      127.0.0.1:6000 127.0.0.1:50000 users:((\"baton\",pid=33,fd=7))
\t bbr bytes_sent:70 bytes_acked:71
LISTEN 0 128 127.0.0.1:7000 0.0.0.0:*
ESTAB 0      0      10.0.0.1:22 10.0.0.2:5555
\t cubic bytes_sent:99999
";

    #[test]
    fn parses_owner_addresses_and_bytes_sent() {
        let s = parse_ss(SS);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(
            s[0],
            Socket {
                pid: 11,
                local: "127.0.0.1:42044".into(),
                peer: "127.0.0.1:5000".into(),
                bytes_sent: 1000
            }
        );
        // No `bytes_sent:` in the info line: nothing sent.
        assert_eq!(s[1].bytes_sent, 0);
        assert_eq!((s[2].pid, s[2].bytes_sent), (33, 70));
    }

    #[test]
    fn puts_each_socket_to_its_pair_and_counts_only_the_window() {
        // n0 = pid 11 (listens on 4000), n1 = pid 22 (listens on 5000), n2 = pid 33 (6000).
        let pids = [11, 22, 33];
        let ports = [4000, 5000, 6000];
        let sock = |pid, l: &str, p: &str, b| Socket {
            pid,
            local: l.into(),
            peer: p.into(),
            bytes_sent: b,
        };
        let before = vec![
            // n0 dialed n1: both ends.
            sock(11, "127.0.0.1:42044", "127.0.0.1:5000", 1000),
            sock(22, "127.0.0.1:5000", "127.0.0.1:42044", 500),
            // n2's connection to an observer, closed before the second snapshot.
            sock(33, "127.0.0.1:6000", "127.0.0.1:50000", 70),
        ];
        let after = vec![
            sock(11, "127.0.0.1:42044", "127.0.0.1:5000", 1600),
            sock(22, "127.0.0.1:5000", "127.0.0.1:42044", 700),
            // n1 dialed n2 during the window: all of it counts.
            sock(22, "127.0.0.1:43000", "127.0.0.1:6000", 40),
            sock(33, "127.0.0.1:6000", "127.0.0.1:43000", 10),
            // Not ours.
            sock(99, "127.0.0.1:1", "127.0.0.1:2", 1 << 20),
        ];
        let t = traffic(&before, &after, &pids, &ports);
        assert_eq!(t.sent, vec![600, 240, 10]);
        assert_eq!(
            t.pairs.into_iter().collect::<Vec<_>>(),
            vec![((0, 1), 800), ((1, 2), 50)]
        );
        assert_eq!((t.closed, t.other), (1, 0));
    }
}
