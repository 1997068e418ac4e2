//! The fuzz targets' entry points (`baton_reliability::fuzzing`), driven by seeded random and
//! mutated inputs in the normal test run, so CI exercises them without a fuzzer:
//! 100 000 frames, 100 000 handshakes, 10 000 config texts, and every file of the seed corpus
//! under `fuzz/corpus/`. Nothing may panic; the entry points' own checks (round trips,
//! "only the genuine peer authenticates", "a finished handshake takes no frame") must hold.

use baton_reliability::fuzzing::{self, Start};
use baton_testkit::{Rng, mutate, random_bytes};
use std::path::PathBuf;
use std::time::Instant;

const FRAMES: usize = 100_000;
const HANDSHAKES: usize = 100_000;
const CONFIGS: usize = 10_000;

fn frame_corpus() -> Vec<Vec<u8>> {
    let g = fuzzing::genuine();
    let mut v = fuzzing::message_frames();
    v.extend([
        g.hello.clone(),
        g.reply.clone(),
        g.auth.clone(),
        g.accept.clone(),
        g.abort.clone(),
        g.refuse.clone(),
        g.client_hello.clone(),
        g.mismatched_reply.clone(),
        g.mismatch_abort.clone(),
        g.mismatch_auth.clone(),
    ]);
    v
}

/// With a length header (true, or random), or none: the stream path then sees whole frames,
/// hostile lengths, or raw bytes.
fn framed(rng: &mut Rng, payload: Vec<u8>) -> Vec<u8> {
    match rng.usize(..4) {
        0 | 1 => {
            let mut out = (payload.len() as u32).to_be_bytes().to_vec();
            out.extend(payload);
            if rng.usize(..3) == 0 {
                // Two frames back to back.
                let again = out.clone();
                out.extend(again);
            }
            out
        }
        2 => {
            let mut out = (rng.u64(..) as u32).to_be_bytes().to_vec();
            out.extend(payload);
            out
        }
        _ => payload,
    }
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let started = Instant::now();
    let mut rng = Rng::with_seed(0x5eed_f4a3_0001);
    let corpus = frame_corpus();
    for i in 0..FRAMES {
        let payload = if i % 5 == 0 {
            let n = rng.usize(..256);
            random_bytes(&mut rng, n)
        } else {
            let base = rng.choice(&corpus).expect("a non-empty list").clone();
            let donor = rng.choice(&corpus).expect("a non-empty list").clone();
            mutate(&mut rng, &base, &donor)
        };
        let data = framed(&mut rng, payload);
        fuzzing::frame(&data);
    }
    println!("{FRAMES} frames in {:?}", started.elapsed());
}

#[test]
fn random_and_mutated_handshakes_never_panic() {
    let started = Instant::now();
    let g = fuzzing::genuine();
    let corpus = frame_corpus();
    // The frame each start expects next, genuine.
    let expected = |s: Start| -> Vec<u8> {
        match s {
            Start::Responder | Start::OpenResponder => g.hello.clone(),
            Start::ResponderAfterHello => g.auth.clone(),
            Start::Initiator | Start::ClientInitiator => g.reply.clone(),
            Start::InitiatorAfterReply => g.accept.clone(),
            Start::MismatchedResponder => g.mismatch_abort.clone(),
        }
    };
    let starts = fuzzing::STARTS;
    let mut rng = Rng::with_seed(0x5eed_4a2d_0002);
    let mut genuine_runs = 0usize;
    for _ in 0..HANDSHAKES {
        let start = *rng.choice(&starts).expect("a non-empty list");
        let mut frames = Vec::new();
        for k in 0..=rng.usize(..3) {
            let f = match rng.usize(..6) {
                // The genuine next frame (then the rest of the sequence goes on).
                0 if k == 0 => {
                    genuine_runs += 1;
                    expected(start)
                }
                0 | 1 => rng.choice(&corpus).expect("a non-empty list").clone(),
                2 => {
                    let n = rng.usize(..160);
                    random_bytes(&mut rng, n)
                }
                _ => {
                    let base = if rng.usize(..2) == 0 {
                        expected(start)
                    } else {
                        rng.choice(&corpus).expect("a non-empty list").clone()
                    };
                    let donor = rng.choice(&corpus).expect("a non-empty list").clone();
                    mutate(&mut rng, &base, &donor)
                }
            };
            frames.push(f);
        }
        fuzzing::handshake(&fuzzing::handshake_input(start, &frames));
    }
    assert!(genuine_runs > 1000);
    println!("{HANDSHAKES} handshakes in {:?}", started.elapsed());
}

/// Values that stress the config's types and checks.
const VALUES: &[&str] = &[
    "\"\"",
    "\"a\"",
    "\"a@b\"",
    "\"#\"",
    "\"127.0.0.1:7101\"",
    "\"b@\"",
    "\"@x\"",
    "0",
    "-1",
    "18446744073709551616",
    "9223372036854775807",
    "1e400",
    "nan",
    "inf",
    "true",
    "[]",
    "[\"a\", \"a\"]",
    "[\"oldest-running\", [\"hardware-weight\"]]",
    "[[]]",
    "{}",
    "{ plugin = \"x.so\" }",
    "{ plugin = 3 }",
    "{ plugn = \"x\" }",
    "{ plugin = \"x.so\", config = { a = [1, { b = 2 }] } }",
    "\"majority\"",
    "\"none\"",
    "\"all\"",
    "1979-05-27T07:32:00Z",
    "'''multi\nline'''",
];

const KEYS: &[&str] = &[
    "name",
    "listen",
    "labels",
    "hardware",
    "data_dir",
    "seeds",
    "voters",
    "secret_file",
    "quorum",
    "heartbeat_ms",
    "failure_timeout_ms",
    "election_backoff_ms",
    "call_timeout_ms",
    "policy",
    "preempt",
    "avoid_groups",
    "avoid_labels",
    "weight",
    "cpus",
    "memory_bytes",
    "unknown_key",
];

const TABLES: &[&str] = &[
    "[node]",
    "[cluster]",
    "[timing]",
    "[[group]]",
    "[group.anti-affinity]",
    "[node.hardware]",
    "[bogus]",
    "[[node]]",
];

fn random_config(rng: &mut Rng) -> String {
    let mut s = String::from("[node]\nname = \"a\"\n");
    for _ in 0..rng.usize(..12) {
        if rng.usize(..3) == 0 {
            s.push_str(rng.choice(TABLES).expect("a non-empty list"));
            s.push('\n');
        }
        s.push_str(rng.choice(KEYS).expect("a non-empty list"));
        s.push_str(" = ");
        s.push_str(rng.choice(VALUES).expect("a non-empty list"));
        s.push('\n');
    }
    s
}

#[test]
fn random_and_mutated_configs_never_panic() {
    let started = Instant::now();
    let examples = fuzzing::config_examples();
    let mut rng = Rng::with_seed(0x5eed_c0f1_0003);
    let mut accepted = 0usize;
    for i in 0..CONFIGS {
        let text = match i % 3 {
            0 => random_config(&mut rng),
            1 => {
                let base = rng
                    .choice(&examples)
                    .expect("a non-empty list")
                    .as_bytes()
                    .to_vec();
                let donor = rng
                    .choice(&examples)
                    .expect("a non-empty list")
                    .as_bytes()
                    .to_vec();
                String::from_utf8_lossy(&mutate(&mut rng, &base, &donor)).into_owned()
            }
            _ => {
                // Line-level: drop, duplicate or swap lines, or replace a value.
                let mut lines: Vec<String> = rng
                    .choice(&examples)
                    .expect("a non-empty list")
                    .lines()
                    .map(str::to_string)
                    .collect();
                for _ in 0..=rng.usize(..3) {
                    let n = lines.len();
                    match rng.usize(..4) {
                        0 => {
                            lines.remove(rng.usize(..n));
                        }
                        1 => {
                            let l = lines[rng.usize(..n)].clone();
                            lines.insert(rng.usize(..n), l);
                        }
                        2 => lines.swap(rng.usize(..n), rng.usize(..n)),
                        _ => {
                            let j = rng.usize(..n);
                            if let Some((k, _)) = lines[j].split_once('=') {
                                lines[j] = format!(
                                    "{k}= {}",
                                    rng.choice(VALUES).expect("a non-empty list")
                                );
                            }
                        }
                    }
                    if lines.is_empty() {
                        break;
                    }
                }
                lines.join("\n")
            }
        };
        if baton_core::config::Config::from_toml_str(&text, None).is_ok() {
            accepted += 1;
        }
        fuzzing::config_text(&text);
    }
    println!(
        "{CONFIGS} configs ({accepted} accepted) in {:?}",
        started.elapsed()
    );
    assert!(accepted > 100, "the generator only makes broken configs");
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Every file of the fuzz seed corpus (and whatever a fuzzing run added to it) goes through
/// its target's entry point.
#[test]
fn fuzz_corpus_files_replay_without_panic() {
    let mut files = 0;
    for (target, entry) in [
        ("frame", fuzzing::frame as fn(&[u8])),
        ("handshake", fuzzing::handshake),
        ("config", fuzzing::config),
    ] {
        let dir = corpus_dir().join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (regenerate with write_fuzz_seed_corpus)",
                dir.display()
            )
        });
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            entry(&data);
            files += 1;
        }
    }
    assert!(files >= 20, "only {files} corpus files");
}

/// Writes the seed corpus of the fuzz targets (`fuzz/corpus/{frame,handshake,config}`): one
/// file per valid input. Run after a message or the handshake changes shape:
/// `cargo test -p baton-reliability --test fuzz_corpus -- --ignored write_fuzz_seed_corpus`
#[test]
#[ignore]
fn write_fuzz_seed_corpus() {
    let g = fuzzing::genuine();
    let write = |target: &str, name: String, data: &[u8]| {
        let dir = corpus_dir().join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    for (i, f) in frame_corpus().iter().enumerate() {
        let mut framed = (f.len() as u32).to_be_bytes().to_vec();
        framed.extend(f);
        write("frame", format!("seed-{i:02}"), f);
        write("frame", format!("seed-{i:02}-framed"), &framed);
    }
    let full = [
        (Start::Responder, vec![g.hello.clone(), g.auth.clone()]),
        (Start::OpenResponder, vec![g.hello.clone()]),
        (Start::ResponderAfterHello, vec![g.auth.clone()]),
        (Start::Initiator, vec![g.reply.clone(), g.accept.clone()]),
        (Start::InitiatorAfterReply, vec![g.accept.clone()]),
        (Start::ClientInitiator, vec![g.reply.clone()]),
        (Start::Responder, vec![g.client_hello.clone()]),
        (Start::ResponderAfterHello, vec![g.abort.clone()]),
        (Start::Initiator, vec![g.reply.clone(), g.refuse.clone()]),
        (Start::Initiator, vec![g.mismatched_reply.clone()]),
        (Start::MismatchedResponder, vec![g.mismatch_abort.clone()]),
        (Start::MismatchedResponder, vec![g.mismatch_auth.clone()]),
    ];
    for (i, (start, frames)) in full.iter().enumerate() {
        write(
            "handshake",
            format!("seed-{i:02}"),
            &fuzzing::handshake_input(*start, frames),
        );
    }
    for (i, text) in fuzzing::config_examples().iter().enumerate() {
        write("config", format!("seed-{i:02}.toml"), text.as_bytes());
    }
}
