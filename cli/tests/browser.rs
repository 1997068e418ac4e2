//! The live web view in a real browser: headless Chromium driven through chromedriver's W3C
//! WebDriver HTTP API, on loopback, against three real `baton node` processes.
//!
//! One tab shows a follower's view; it must show the three nodes and the leader. A second tab
//! opens the leader's own view, enters the admin token and presses "kill" (accepting the
//! page's confirmation). Back in the first tab — never reloaded — the new leader and the
//! timeline entry must appear within 1 s of the kill. Then the first tab's "transfer to" (with
//! the token) moves leadership to the other survivor, shown with a `transfer` timeline entry.
//! A screenshot of that tab is saved as `<target dir>/admin-view.png`.
//!
//! It needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them) and fails,
//! naming them, when either is missing: it is never skipped. `BATON_CHROMIUM` and
//! `BATON_CHROMEDRIVER` point it at other binaries; `WD_DEBUG=1` prints every WebDriver
//! exchange.
//!
//! WebDriver is spoken directly (JSON over HTTP/1.1, a dozen commands) rather than through a
//! client crate such as fantoccini or thirtyfour: those bring a second HTTP stack and TLS into
//! the build for what fits in a hundred lines of the test.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "test code, where a panic is the failure report and WD_DEBUG prints (clippy exempts only #[test] fns)"
)]

mod common;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The key of an element reference in W3C WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `name` from `$env`, else on PATH, else a loud failure naming the Debian package.
fn binary(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env}={}: no such file (the browser test needs Chromium and chromedriver: \
             Debian's `chromium` and `chromium-driver` packages)",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser test needs `{name}`, which is not on PATH (nor set in {env}): \
                 install Debian's `chromium` and `chromium-driver` packages \
                 (apt-get install chromium chromium-driver; .ci/run does this)"
            )
        })
}

/// A WebDriver session; deleted (which quits the browser) on drop.
struct Browser {
    driver: String,
    session: String,
}

impl Browser {
    /// Sends a WebDriver command; returns its `value`, or panics with the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        webdriver(&self.driver, method, &path, body)
    }

    fn execute(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("element {css}: {v}"))
            .to_string()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn switch_to(&self, handle: &str) {
        self.call("POST", "/window", Some(json!({ "handle": handle })));
    }

    /// What the view shows: its connection badge, the rows of its node table, group
    /// `tracked`'s leader line, its timeline entries (reason, text) and the no-reload marker.
    fn view(&self) -> Value {
        self.execute(
            r##"const q = (s) => [...document.querySelectorAll(s)];
            const g = document.querySelector('[data-group="tracked"] .leader');
            return {
              conn: document.getElementById("conn").textContent,
              nodes: q("#nodes tbody tr").map((r) => [r.dataset.node, r.children[1].textContent]),
              leader: g ? g.textContent : null,
              timeline: q("#timeline li[data-reason]").map((l) => [l.dataset.reason, l.textContent]),
              kill_enabled: !document.getElementById("kill").disabled,
              marker: window.batonTestMarker || null,
              seen_at: window.batonSeenAt || null,
            };"##,
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort: chromedriver's own end (its guard SIGKILLs it) leaves nothing behind
        // either way, but a deleted session ends the browser at once.
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| webdriver(&self.driver, "DELETE", &path, None));
    }
}

/// One WebDriver command to the driver at `addr`.
fn webdriver(addr: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let headers = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/json\r\n".to_string()
    };
    let (code, text) = http_request(addr, method, path, &headers, &body, Duration::from_secs(60));
    if std::env::var_os("WD_DEBUG").is_some() {
        println!("{method} {path} -> {code} {text}");
    }
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: {code} {text:?}: {e}"));
    assert_eq!(code, 200, "WebDriver {method} {path} {body}: {v}");
    v["value"].clone()
}

/// Starts chromedriver on a free loopback port; waits until it is ready.
fn start_chromedriver(log: &Path) -> (Proc, String) {
    let bin = binary("BATON_CHROMEDRIVER", "chromedriver");
    let port = free_ports(1)[0];
    let log = std::fs::File::create(log).unwrap();
    let p = Proc::spawn(
        Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_until(Duration::from_secs(20), "chromedriver to be ready", || {
        std::net::TcpStream::connect(&addr).ok()?;
        let v = webdriver(&addr, "GET", "/status", None);
        (v["ready"] == true).then_some(())
    });
    (p, addr)
}

/// A headless Chromium session with a fresh profile in `profile`.
fn start_browser(driver: &str, profile: &Path) -> Browser {
    let chromium = binary("BATON_CHROMIUM", "chromium");
    let caps = json!({ "capabilities": { "alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1200,1100",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    }}});
    let v = webdriver(driver, "POST", "/session", Some(caps));
    Browser {
        driver: driver.to_string(),
        session: v["sessionId"].as_str().unwrap().to_string(),
    }
}

/// Polls the view until `ok` holds, for at most `timeout`; returns the view and when.
fn wait_view(
    b: &Browser,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> (Value, Instant) {
    let t0 = Instant::now();
    loop {
        let v = b.view();
        if ok(&v) {
            return (v, Instant::now());
        }
        assert!(
            t0.elapsed() < timeout,
            "the view did not show {what} within {timeout:?}; it shows {v:#}"
        );
        sleep(Duration::from_millis(10));
    }
}

/// The nodes the view shows alive, sorted (the view lists its own node first).
fn alive_nodes(v: &Value) -> Vec<String> {
    let mut alive: Vec<String> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[1] == "alive")
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    alive.sort();
    alive
}

#[test]
fn the_live_view_in_chromium_follows_a_kill_of_the_leader() {
    // The browser first: its start is a burst of CPU that must not fall into the cluster's
    // elections. A failure timeout of 1 s keeps a loaded machine from making them flap.
    let scratch = Dir::new("browser-profile");
    let (_driver_proc, driver) = start_chromedriver(&scratch.0.join("chromedriver.log"));
    let b = start_browser(&driver, &scratch.0.join("profile"));
    let (mut c, admins) = admin_cluster_timed("browser", 1000);
    let (leader, _) = agreed(&c, &ABC, Duration::from_secs(10));
    let follower = ABC.iter().find(|n| **n != leader).unwrap().to_string();

    // A follower's view: three nodes alive, the leader, live.
    b.open(&format!("http://{}/", admins[&follower]));
    let observer = b.call("GET", "/window", None).as_str().unwrap().to_string();
    let leads = format!("leader {leader}");
    let (before, _) = wait_view(
        &b,
        Duration::from_secs(10),
        "three nodes and the leader",
        |v| v["conn"] == "live" && alive_nodes(v) == ABC && v["leader"] == leads.as_str(),
    );
    b.execute("window.batonTestMarker = 'not reloaded'; return null;");
    // The page's own clock of when it first showed another leader and a crash_proof entry
    // (a DOM observer), so that WebDriver's round trips on a loaded machine do not count.
    b.execute(&format!(
        r##"const old = {leads:?};
        new MutationObserver(() => {{
          if (window.batonSeenAt) return;
          const g = document.querySelector('[data-group="tracked"] .leader');
          const shown = g ? g.textContent : "";
          if (shown.startsWith("leader ") && shown !== old
              && document.querySelector('#timeline li[data-reason="crash_proof"]')) {{
            window.batonSeenAt = Date.now();
          }}
        }}).observe(document.body, {{ subtree: true, childList: true, characterData: true }});
        return null;"##
    ));

    // The leader's own view in a second tab: the token, then "kill" and the page's
    // confirmation.
    let tab = b.call("POST", "/window/new", Some(json!({ "type": "tab" })));
    b.switch_to(tab["handle"].as_str().unwrap());
    b.open(&format!("http://{}/", admins[&leader]));
    wait_view(
        &b,
        Duration::from_secs(10),
        "the leader's view, actions on",
        |v| v["conn"] == "live" && v["kill_enabled"] == true,
    );
    let token = b.element("#token");
    b.call(
        "POST",
        &format!("/element/{token}/value"),
        Some(json!({ "text": TOKEN })),
    );
    let kill = b.element("#kill");
    // Browser time (both tabs share the clock), taken before the click: the confirmation
    // dialog's round trips count against the view.
    let clicked_at = b.execute("return Date.now();").as_f64().unwrap();
    b.call("POST", &format!("/element/{kill}/click"), Some(json!({})));
    let text = b.call("GET", "/alert/text", None);
    assert!(text.as_str().unwrap().contains("Kill"), "{text}");
    let killed = Instant::now();
    b.call("POST", "/alert/accept", Some(json!({})));

    // Back on the follower's view, not reloaded: a new leader and its timeline entry (the
    // kill is proven by the refused reconnect), within 1 s.
    b.switch_to(&observer);
    let entries = before["timeline"].as_array().unwrap().len();
    let (v, seen) = wait_view(
        &b,
        Duration::from_secs(10),
        "a new leader and its timeline entry",
        |v| {
            let shown = v["leader"].as_str().unwrap_or("");
            let timeline = v["timeline"].as_array().unwrap();
            shown.starts_with("leader ")
                && shown != leads
                && timeline.len() > entries
                && timeline.iter().any(|e| {
                    e[0] == "crash_proof"
                        && e[1].as_str().unwrap().contains(shown)
                        && e[1].as_str().unwrap().contains(&format!("was {leader}"))
                })
        },
    );
    let polled = seen - killed;
    assert_eq!(v["marker"], "not reloaded", "the page was reloaded: {v:#}");
    assert_eq!(v["conn"], "live", "{v:#}");
    let st = c.proc(&leader).wait_status(Duration::from_secs(5));
    assert!(
        !st.success(),
        "the kill button did not kill {leader}: {st:?}"
    );
    let took_ms = v["seen_at"].as_f64().unwrap() - clicked_at;
    assert!(
        took_ms < 1000.0,
        "the view showed the new leader {took_ms} ms after the click on kill (1 s allowed): {v:#}\n{}",
        c.logs()
    );
    // The killed node is shown down (once the view refreshed after its peer event).
    let (v, _) = wait_view(&b, Duration::from_secs(5), "the old leader down", |v| {
        !alive_nodes(v).contains(&leader) && alive_nodes(v).len() == 2
    });
    println!(
        "the view showed the new leader {took_ms} ms after the click on kill (by the page's \
         clock; {polled:?} after the kill was confirmed, by WebDriver's polling): {v:#}"
    );

    // The group's "transfer to" in this (a follower's) view, with the token: the leader,
    // wherever it runs, hands off to the member chosen (the only other live one).
    let new_leader = v["leader"].as_str().unwrap()["leader ".len()..].to_string();
    let target = alive_nodes(&v)
        .into_iter()
        .find(|n| *n != new_leader)
        .unwrap();
    let token = b.element("#token");
    b.call(
        "POST",
        &format!("/element/{token}/value"),
        Some(json!({ "text": TOKEN })),
    );
    let chosen = b.execute(
        r##"const g = document.querySelector('[data-group="tracked"]');
        const pick = g.querySelector(".transfer-to"), go = g.querySelector(".transfer");
        if (go.disabled) return null;
        const to = pick.value;
        go.click();
        return to;"##,
    );
    assert_eq!(chosen, target.as_str(), "the transfer choice: {v:#}");
    let moved = format!("leader {target}");
    let (v, _) = wait_view(
        &b,
        Duration::from_secs(10),
        "the transfer's new leader and timeline entry",
        |v| {
            v["leader"] == moved.as_str()
                && v["timeline"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e[0] == "transfer" && e[1].as_str().unwrap().contains(&moved))
        },
    );
    assert_eq!(v["marker"], "not reloaded", "{v:#}");

    let png = base64::engine::general_purpose::STANDARD
        .decode(b.call("GET", "/screenshot", None).as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let shot = target.parent().unwrap_or(&target).join("admin-view.png");
    std::fs::write(&shot, &png).unwrap();
    println!("screenshot: {}", shot.display());
}
