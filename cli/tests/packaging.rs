//! `baton completions SHELL` and `baton man`: generated from the clap definitions, non-empty,
//! naming every public subcommand and none of the internal ones.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;

use common::{BATON, Dir, Proc, fails, free_ports};
use std::process::{Command, Stdio};

const SUBCOMMANDS: [&str; 8] = [
    "node",
    "status",
    "work",
    "watch",
    "exec",
    "demo",
    "completions",
    "man",
];

fn run(args: &[&str]) -> String {
    let out = Command::new(BATON).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "baton {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_name_every_subcommand_in_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = run(&["completions", shell]);
        assert!(text.len() > 500, "{shell}: {text}");
        for sub in SUBCOMMANDS {
            assert!(
                text.contains(sub),
                "{shell} completions lack {sub}:\n{text}"
            );
        }
        assert!(!text.contains("__watchdog"), "{shell}: an internal command");
        // Flags of subcommands too, not only their names.
        assert!(
            text.contains("log-format") && text.contains("grace-ms"),
            "{shell}"
        );
    }
    let out = Command::new(BATON)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_man_page_names_every_subcommand_and_out_dir_writes_one_per_subcommand() {
    let page = run(&["man"]);
    assert!(page.contains(".TH baton 1"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "the man page lacks {sub}:\n{page}");
    }
    assert!(
        page.contains("BATON_CONFIG"),
        "the environment is documented"
    );

    let dir = Dir::new("man");
    let out = dir.0.join("man1");
    run(&["man", "--out-dir", out.to_str().unwrap()]);
    for sub in SUBCOMMANDS {
        let f = out.join(format!("baton-{sub}.1"));
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(text.contains(&format!(".TH baton-{sub} 1")), "{text}");
    }
    let node = std::fs::read_to_string(out.join("baton-node.1")).unwrap();
    assert!(node.contains("BATON_CONFIG"), "{node}");
    assert!(out.join("baton.1").is_file());
    assert!(
        !out.join("baton-__watchdog.1").exists(),
        "an internal command's page"
    );
}

#[test]
fn baton_config_stands_in_for_config() {
    let err = fails(
        Command::new(BATON)
            .args(["status"])
            .env("BATON_CONFIG", "/nonexistent/baton-env.toml"),
    );
    assert!(
        err.contains("/nonexistent/baton-env.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn baton_log_format_stands_in_for_log_format() {
    let port = free_ports(1)[0];
    let mut node = Proc::spawn(
        Command::new(BATON)
            .args([
                "node",
                "--insecure-no-secret",
                "--name",
                "envlog",
                "--listen",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .env("BATON_LOG_FORMAT", "json")
            .env("BATON_LOG", "info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let stderr = node.child.as_mut().unwrap().stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Every line JSON, and the node named in them once it is known.
    let mut seen = vec![];
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no JSON line naming the node: {seen:#?}"));
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
        seen.push(line);
        if v["node"] == "envlog" {
            assert!(v["fields"]["message"].is_string(), "{v}");
            break;
        }
    }
    node.signal("TERM");
    assert_eq!(node.wait_exit(std::time::Duration::from_secs(10)), Some(0));
}
