//! The bounded per-peer outgoing queue: `send` pushes without waiting, the writer task of the
//! peer's current outbound connection pops.

use baton_core::Message;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

pub(crate) struct Queue {
    items: Mutex<VecDeque<Message>>,
    notify: Notify,
    cap: usize,
    dropped: Mutex<u64>,
}

/// What [`Queue::push`] did.
pub(crate) enum Pushed {
    Queued,
    /// The queue was full; the message was dropped. Carries the number of drops so far.
    Dropped(u64),
}

impl Queue {
    pub(crate) fn new(cap: usize) -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            cap: cap.max(1),
            dropped: Mutex::new(0),
        }
    }

    pub(crate) fn push(&self, message: Message) -> Pushed {
        {
            let mut items = lock(&self.items);
            if items.len() < self.cap {
                items.push_back(message);
                drop(items);
                self.notify.notify_one();
                return Pushed::Queued;
            }
        }
        let mut dropped = lock(&self.dropped);
        *dropped += 1;
        Pushed::Dropped(*dropped)
    }

    /// Waits for the next message. Cancel-safe: a message is removed only in the poll that
    /// returns it.
    pub(crate) async fn pop(&self) -> Message {
        loop {
            if let Some(m) = lock(&self.items).pop_front() {
                return m;
            }
            self.notify.notified().await;
        }
    }

    pub(crate) fn clear(&self) {
        lock(&self.items).clear();
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it (every critical
/// section in this crate leaves the data consistent at each step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
