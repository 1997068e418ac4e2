//! `baton watch`: follows a node's admin event stream (`GET /api/events`, server-sent events
//! over plain HTTP/1.1) and prints one line per leadership change — first the current leader
//! of every group (reason `current`), then each change as the node sees it. Exits 1 when the
//! stream ends or goes silent for three keep-alive periods (the node went away).

use crate::cli::WatchCmd;
use crate::errors::{Kind, fail};
use anyhow::Result;
use baton_core::config::Config;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Without a byte for this long (three keep-alives), the node is taken as gone.
const SILENCE: Duration = Duration::from_secs(3 * baton_admin::KEEP_ALIVE.as_secs());

/// The admin address to follow: `--admin`, else the config's `[admin] listen` (an unspecified
/// address such as 0.0.0.0 is reached on loopback).
fn target(cmd: &WatchCmd) -> Result<SocketAddr> {
    let (text, from) = match (&cmd.admin, &cmd.config) {
        (Some(a), _) => (a.clone(), "--admin".to_string()),
        (None, Some(path)) => {
            let config = Config::load(path).map_err(|e| fail(Kind::Config, e.to_string()))?;
            match config.admin {
                Some(a) => (a.listen, format!("{}: admin.listen", path.display())),
                None => {
                    return Err(fail(
                        Kind::Config,
                        format!(
                            "{}: no [admin] section: baton watch follows the node's admin event stream; set [admin] listen = \"127.0.0.1:7180\" in the node's config (or start it with --admin ADDR) and pass --admin ADDR here if it differs",
                            path.display()
                        ),
                    ));
                }
            }
        }
        (None, None) => {
            return Err(fail(
                Kind::Usage,
                "baton watch needs --config FILE (a node's config with [admin] listen) or --admin ADDR",
            ));
        }
    };
    let mut addr: SocketAddr = text.trim().parse().map_err(|e| {
        fail(
            Kind::Config,
            format!("{from}: {text:?} is not an `ip:port` address ({e})"),
        )
    })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(addr)
}

/// `baton watch`.
pub(crate) async fn run(cmd: WatchCmd) -> Result<()> {
    let addr = target(&cmd)?;
    let timeout = Duration::from_millis(cmd.timeout_ms);
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(fail(
                Kind::Unreachable,
                format!(
                    "cannot connect to the admin listener at {addr}: {e}; is a node running with [admin] listen = \"{addr}\"?"
                ),
            ));
        }
        Err(_) => {
            return Err(fail(
                Kind::Timeout,
                format!("the admin listener at {addr} did not accept within {timeout:?}"),
            ));
        }
    };
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let chunked = read_head(&mut reader, addr).await?;
    let mut events = SseParser::default();
    let gone = || {
        fail(
            Kind::Runtime,
            format!("the node at {addr} went away (its admin event stream ended)"),
        )
    };
    loop {
        let bytes = read_body(&mut reader, chunked)
            .await
            .map_err(|e| fail(Kind::Runtime, format!("the node at {addr} went away: {e}")))?;
        let Some(bytes) = bytes else {
            return Err(gone());
        };
        for (event, data) in events.feed(&String::from_utf8_lossy(&bytes)) {
            for line in render(&event, &data, &cmd) {
                println!("{line}");
            }
        }
    }
}

/// Reads the status line and headers; fails unless 200. Returns whether the body is chunked.
async fn read_head(reader: &mut BufReader<TcpStream>, addr: SocketAddr) -> Result<bool> {
    let mut line = String::new();
    let read = tokio::time::timeout(SILENCE, reader.read_line(&mut line)).await;
    if !matches!(read, Ok(Ok(n)) if n > 0) {
        return Err(fail(
            Kind::Unreachable,
            format!("the admin listener at {addr} sent no HTTP answer"),
        ));
    }
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(fail(
            Kind::Runtime,
            format!("{addr} answered /api/events with {}", line.trim_end()),
        ));
    }
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            return Ok(chunked);
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("transfer-encoding")
            && v.trim().eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
}

/// The next piece of the body (`None` at its end), within [`SILENCE`].
async fn read_body(
    reader: &mut BufReader<TcpStream>,
    chunked: bool,
) -> std::io::Result<Option<Vec<u8>>> {
    let silent = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("silent for {SILENCE:?}"),
        )
    };
    if !chunked {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(SILENCE, reader.read(&mut buf))
            .await
            .map_err(|_| silent())??;
        buf.truncate(n);
        return Ok((n > 0).then_some(buf));
    }
    let mut size = String::new();
    let n = tokio::time::timeout(SILENCE, reader.read_line(&mut size))
        .await
        .map_err(|_| silent())??;
    if n == 0 {
        return Ok(None);
    }
    let hex = size.trim().split(';').next().unwrap_or("");
    let len = usize::from_str_radix(hex, 16).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad chunk size {hex:?}"),
        )
    })?;
    if len == 0 {
        return Ok(None);
    }
    // Keep-alives arrive well within the silence bound; a chunk is never huge.
    let mut buf = vec![0u8; len.min(1 << 20)];
    tokio::time::timeout(SILENCE, reader.read_exact(&mut buf))
        .await
        .map_err(|_| silent())??;
    let mut crlf = [0u8; 2];
    reader.read_exact(&mut crlf).await?;
    Ok(Some(buf))
}

/// Server-sent events from a byte stream: `(event, data)` for each complete event.
#[derive(Default)]
struct SseParser {
    pending: String,
    event: String,
    data: String,
}

impl SseParser {
    fn feed(&mut self, text: &str) -> Vec<(String, String)> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        while let Some(i) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=i).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let event = std::mem::take(&mut self.event);
                    let event = if event.is_empty() {
                        "message".into()
                    } else {
                        event
                    };
                    out.push((event, std::mem::take(&mut self.data)));
                }
                self.event.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                self.event = v.trim_start().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
            // Comments (`:` keep-alives) and other fields are ignored.
        }
        out
    }
}

/// The lines one event makes: the current leaders for `hello`, one line per `leadership`.
fn render(event: &str, data: &str, cmd: &WatchCmd) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return vec![];
    };
    let changes: Vec<Value> = match event {
        "hello" => v["groups"]
            .as_array()
            .map(|gs| {
                gs.iter()
                    .map(|g| {
                        json!({
                            "group": g["group"],
                            "leader": g["leader"],
                            "member": g["member"],
                            "previous": Value::Null,
                            "term": g["term"],
                            "reason": "current",
                            "time_ms": crate::watch::now_ms(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        "leadership" => vec![v],
        _ => vec![],
    };
    changes
        .into_iter()
        .filter(|c| cmd.group.as_deref().is_none_or(|g| c["group"] == g))
        .map(|c| line(&c, cmd.json))
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-12-01T17:30:50.123Z tracked: leader b (term 3) reason crash_proof, was a`, or the
/// JSON object.
fn line(c: &Value, json: bool) -> String {
    let ms = c["time_ms"].as_u64().unwrap_or(0);
    let time = rfc3339(ms);
    if json {
        return json!({
            "group": c["group"],
            "leader": c["leader"],
            "member": c["member"],
            "previous": c["previous"],
            "term": c["term"],
            "reason": c["reason"],
            "time": time,
            "time_ms": ms,
        })
        .to_string();
    }
    let group = c["group"].as_str().unwrap_or("?");
    let term = c["term"].as_u64().unwrap_or(0);
    let what = match c["leader"].as_str() {
        Some(l) => format!("leader {l}"),
        None => "no leader".to_string(),
    };
    let was = match c["previous"].as_str() {
        Some(p) => format!(", was {p}"),
        None => String::new(),
    };
    format!(
        "{time} {group}: {what} (term {term}) reason {}{was}",
        c["reason"].as_str().unwrap_or("?")
    )
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(group: Option<&str>, json: bool) -> WatchCmd {
        WatchCmd {
            config: None,
            admin: None,
            group: group.map(String::from),
            json,
            timeout_ms: 1000,
        }
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_146_250_007), "2026-12-01T17:30:50.007Z");
    }

    #[test]
    fn events_split_across_reads_make_one_line_each() {
        let mut p = SseParser::default();
        assert!(p.feed(": keep-alive\n\nevent: leader").is_empty());
        let data = r#"{"type":"leadership","group":"tracked","leader":"b","member":"b#0","previous":"a","term":3,"reason":"crash_proof","leaderless_ms":310.0,"time_ms":0}"#;
        let got = p.feed(&format!(
            "ship\ndata: {data}\n\nevent: peer\ndata: {{}}\n\n"
        ));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "leadership");
        let lines = render(&got[0].0, &got[0].1, &cmd(None, false));
        assert_eq!(
            lines,
            ["1970-01-01T00:00:00.000Z tracked: leader b (term 3) reason crash_proof, was a"]
        );
        let lines = render(&got[0].0, &got[0].1, &cmd(Some("tracked"), true));
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["reason"], "crash_proof");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert!(render(&got[0].0, &got[0].1, &cmd(Some("other"), false)).is_empty());
        assert!(render(&got[1].0, &got[1].1, &cmd(None, false)).is_empty());
        let hello =
            r#"{"node":"a","groups":[{"group":"tracked","leader":null,"member":null,"term":0}]}"#;
        let lines = render("hello", hello, &cmd(None, false));
        assert!(
            lines[0].ends_with("tracked: no leader (term 0) reason current"),
            "{lines:?}"
        );
    }
}
