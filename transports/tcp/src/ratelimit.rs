//! A small rate limiter for log lines: the first occurrence of a kind of event for one key (a
//! peer address, a node) is logged, the next ones within the window are counted, and the first
//! one after the window is logged with a summary of what was held back
//! (`… 312 more in the last 10 s`).
//!
//! The table of keys is bounded: when it is full, expired keys are forgotten; when none has
//! expired, an event of a new key is held back (and counted for the whole limiter, reported on
//! the next line logged), so a flood from many addresses cannot grow it either.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;
use tokio::time::Instant;

/// The default window: one line per kind and key per 10 s.
pub(crate) const LOG_WINDOW: Duration = Duration::from_secs(10);
/// Keys tracked at once by default.
pub(crate) const LOG_KEYS: usize = 256;

/// What to do with one occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it; `held_back` occurrences of this key (and of keys that found no room) were not
    /// logged since its last line, `over` ago.
    Log { held_back: u64, over: Duration },
    /// Do not log it (it is counted).
    HoldBack,
}

impl Verdict {
    /// `""`, or `" (… N more in the last 10 s)"` to append to the logged line.
    pub(crate) fn suffix(&self) -> String {
        match self {
            Verdict::Log { held_back, over } if *held_back > 0 => {
                format!(
                    " (… {held_back} more in the last {} s)",
                    over.as_secs().max(1)
                )
            }
            _ => String::new(),
        }
    }
}

struct Slot {
    since: Instant,
    held_back: u64,
}

/// Rate-limits log lines per key. Not thread-safe by itself: keep it under a mutex.
pub(crate) struct LogLimiter<K> {
    window: Duration,
    max_keys: usize,
    slots: HashMap<K, Slot>,
    /// Occurrences of keys that found no room in the table.
    homeless: u64,
}

impl<K: Hash + Eq + Clone> LogLimiter<K> {
    pub(crate) fn new(window: Duration, max_keys: usize) -> Self {
        LogLimiter {
            window,
            max_keys: max_keys.max(1),
            slots: HashMap::new(),
            homeless: 0,
        }
    }

    /// Whether to log an occurrence of `key` at `now`.
    pub(crate) fn check(&mut self, key: &K, now: Instant) -> Verdict {
        if let Some(slot) = self.slots.get_mut(key) {
            let age = now.saturating_duration_since(slot.since);
            if age < self.window {
                slot.held_back += 1;
                return Verdict::HoldBack;
            }
            let held_back =
                std::mem::take(&mut slot.held_back) + std::mem::take(&mut self.homeless);
            slot.since = now;
            return Verdict::Log {
                held_back,
                over: age,
            };
        }
        if self.slots.len() >= self.max_keys {
            let window = self.window;
            self.slots
                .retain(|_, s| now.saturating_duration_since(s.since) < window);
            if self.slots.len() >= self.max_keys {
                self.homeless += 1;
                return Verdict::HoldBack;
            }
        }
        self.slots.insert(
            key.clone(),
            Slot {
                since: now,
                held_back: 0,
            },
        );
        Verdict::Log {
            held_back: std::mem::take(&mut self.homeless),
            over: self.window,
        }
    }

    #[cfg(test)]
    /// Forgets `key`: its next occurrence is logged at once (e.g. once the condition ended).
    pub(crate) fn forget(&mut self, key: &K) -> u64 {
        self.slots.remove(key).map(|s| s.held_back).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_summary_after_the_window() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10), 8);
        assert_eq!(
            l.check(&"a", t0),
            Verdict::Log {
                held_back: 0,
                over: Duration::from_secs(10)
            }
        );
        for i in 0..312 {
            assert_eq!(
                l.check(&"a", t0 + Duration::from_millis(i)),
                Verdict::HoldBack
            );
        }
        // Another key is independent.
        assert!(matches!(
            l.check(&"b", t0),
            Verdict::Log { held_back: 0, .. }
        ));
        let v = l.check(&"a", t0 + Duration::from_secs(10));
        assert_eq!(
            v,
            Verdict::Log {
                held_back: 312,
                over: Duration::from_secs(10)
            }
        );
        assert_eq!(v.suffix(), " (… 312 more in the last 10 s)");
        assert_eq!(l.forget(&"a"), 0);
        assert!(matches!(
            l.check(&"a", t0 + Duration::from_secs(11)),
            Verdict::Log { .. }
        ));
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10), 4);
        for k in 0..4 {
            assert!(matches!(l.check(&k, t0), Verdict::Log { .. }));
        }
        // No room: held back, counted.
        for k in 4..100 {
            assert_eq!(l.check(&k, t0), Verdict::HoldBack);
        }
        assert_eq!(l.slots.len(), 4);
        // Once the window passed, old keys make room; the homeless count is reported.
        let v = l.check(&200, t0 + Duration::from_secs(10));
        assert_eq!(
            v,
            Verdict::Log {
                held_back: 96,
                over: Duration::from_secs(10)
            }
        );
        assert!(l.slots.len() <= 4);
    }
}
