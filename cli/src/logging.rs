//! Log output: text lines (the default) or, with `--log-format json` / `BATON_LOG_FORMAT=json`,
//! tracing-subscriber's JSON lines with the node's name added to every one once it is known
//! (`"node":"a"`), also for lines from tasks that carry no span. The level comes from
//! `BATON_LOG`, else `RUST_LOG` (same syntax), else each command's default.

use crate::cli::LogFormat;
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

static NODE_NAME: OnceLock<String> = OnceLock::new();

/// Names the node in every JSON log line from now on (the first name set stays).
pub(crate) fn set_node_name(name: &str) {
    let _ = NODE_NAME.set(name.to_string());
}

/// Installs the global subscriber.
pub(crate) fn init(format: LogFormat, default_level: &str) {
    // `BATON_LOG` (baton's own name, for unit files and containers) wins over `RUST_LOG`.
    let filter = EnvFilter::try_from_env("BATON_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .fmt_fields(JsonFields::new())
            .event_format(WithNode(
                tracing_subscriber::fmt::format().json().with_target(false),
            ))
            .init(),
    }
}

/// The JSON format with `"node"` first in each object.
struct WithNode(Format<Json>);

impl<S, N> FormatEvent<S, N> for WithNode
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match (NODE_NAME.get(), line.strip_prefix('{')) {
            (Some(name), Some(rest)) => {
                let name = serde_json::Value::String(name.clone());
                write!(writer, "{{\"node\":{name},{rest}")
            }
            _ => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_node_name() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .fmt_fields(JsonFields::new())
            .event_format(WithNode(
                tracing_subscriber::fmt::format().json().with_target(false),
            ))
            .finish();
        set_node_name("a\"b");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(group = "tracked", "leader is b (term 3)");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["node"], "a\"b", "{text}");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], "leader is b (term 3)");
        assert_eq!(v["fields"]["group"], "tracked");
    }
}
