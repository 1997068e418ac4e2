//! Log output captured in memory, for tests that assert what a node logged (and how much).

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Captured log text (a cheap handle: clones share the buffer).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures every line of DEBUG and above written on this thread while the guard lives (use
    /// a current-thread runtime).
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = logs.subscriber(tracing::Level::DEBUG).finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    /// A subscriber that writes plain lines of `level` and above into these logs.
    fn subscriber(
        &self,
        level: tracing::Level,
    ) -> tracing_subscriber::fmt::SubscriberBuilder<
        tracing_subscriber::fmt::format::DefaultFields,
        tracing_subscriber::fmt::format::Format,
        tracing::level_filters::LevelFilter,
        Logs,
    > {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(level)
    }

    /// Every line of INFO and above of the whole process (all nodes): the global subscriber,
    /// installed by the first call (when no other is installed yet).
    pub fn global() -> &'static Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let _ = logs.subscriber(tracing::Level::INFO).try_init();
            logs
        })
    }

    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many bytes were logged so far.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// True when nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        self.since(0)
    }

    /// What was logged after the first `from` bytes.
    pub fn since(&self, from: usize) -> String {
        let all = self.bytes();
        String::from_utf8_lossy(all.get(from..).unwrap_or_default()).into_owned()
    }

    /// Waits until a log line contains every one of `needles`; returns it. Panics with the logs
    /// after [`SOON`](crate::conformance::SOON).
    pub async fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + crate::conformance::SOON;
        loop {
            let text = self.text();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no log line containing {needles:?}; logs:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Appends to a [`Logs`] buffer.
pub struct LogWriter(Logs);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.clone())
    }
}
