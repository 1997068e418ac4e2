//! Policy ranking: each built-in policy and a 3-policy chain at n = 10, 100, 1 000, 10 000
//! candidates; and the example plugin (`examples/custom-policy` built as a cdylib, loaded with
//! `baton_core::plugin::load_policy`) against the same policy linked statically, at n = 100.
//!
//! The plugin call includes what every plugin call costs: the input encoded in postcard (ABI
//! version 2; JSON before), the FFI call (the plugin decodes it, ranks, encodes its answer) and
//! the host decoding and checking the answer.
#![allow(
    clippy::print_stderr,
    reason = "a benchmark: it reports sizes beside criterion's timings"
)]

use baton_benches::inputs;
use baton_core::config::AntiAffinityConfig;
use baton_core::plugin::{abi, load_policy, serde_json};
use baton_core::{ElectionInput, LeaderPolicy};
use baton_strategies::{AntiAffinity, Chain, HardwareWeight, OldestRunning};
use criterion::{BenchmarkId, Criterion, Throughput};
use custom_policy::ZonePreference;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn anti_affinity() -> AntiAffinity {
    AntiAffinity::new(AntiAffinityConfig {
        avoid_groups: inputs::avoid_groups(),
        avoid_labels: Default::default(),
    })
}

fn ranking(c: &mut Criterion) {
    let policies: Vec<(&str, Arc<dyn LeaderPolicy>)> = vec![
        ("oldest-running", Arc::new(OldestRunning)),
        ("hardware-weight", Arc::new(HardwareWeight)),
        ("anti-affinity", Arc::new(anti_affinity())),
        (
            "chain3",
            Arc::new(Chain::new(vec![
                Arc::new(anti_affinity()),
                Arc::new(HardwareWeight),
                Arc::new(OldestRunning),
            ])),
        ),
    ];
    let mut group = c.benchmark_group("policy_ranking");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in [10usize, 100, 1_000, 10_000] {
        let input = inputs::input(n);
        group.throughput(Throughput::Elements(n as u64));
        for (name, policy) in &policies {
            assert_eq!(policy.rank(&input).len(), n, "{name} ranks every candidate");
            group.bench_with_input(BenchmarkId::new(*name, n), &input, |b, input| {
                b.iter(|| policy.rank(black_box(input)))
            });
        }
    }
    group.finish();
}

fn plugin(c: &mut Criterion) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp");
    let path = baton_benches::plugin::custom_policy(target).expect("build the example plugin");
    let config: toml::Value = toml::from_str("zone = \"eu-1\"").expect("toml");
    let loaded = load_policy(&path, Some(&config))
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
    let linked = ZonePreference::new("eu-1");
    let n = 100;
    let input = inputs::input(n);
    assert_eq!(
        loaded.try_rank(&input).expect("the plugin ranks"),
        linked.rank(&input),
        "plugin and static policy agree"
    );
    let mut group = c.benchmark_group("plugin_vs_static");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(n as u64));
    group.bench_with_input(BenchmarkId::new("static", n), &input, |b, input| {
        b.iter(|| linked.rank(black_box(input)))
    });
    group.bench_with_input(BenchmarkId::new("plugin", n), &input, |b, input| {
        b.iter(|| loaded.rank(black_box(input)))
    });
    // Where the plugin's extra time goes: the input crosses the boundary in postcard (ABI 2),
    // encoded by the host and decoded by the plugin (the answer, 100 member ids, is small).
    let bytes = abi::encode_request(&input, false).expect("input encodes");
    eprintln!(
        "plugin input for n = {n}: {} bytes of postcard",
        bytes.len()
    );
    group.bench_with_input(BenchmarkId::new("encode-input", n), &input, |b, input| {
        b.iter(|| abi::encode_request(black_box(input), false).expect("encodes"))
    });
    group.bench_with_input(BenchmarkId::new("decode-input", n), &bytes, |b, bytes| {
        b.iter(|| abi::decode_request(black_box(bytes)).expect("decodes"))
    });
    // What ABI 1 paid instead, in the same run: the same input as JSON.
    let json = serde_json::to_vec(&input).expect("input encodes");
    eprintln!("the same input as JSON (ABI 1): {} bytes", json.len());
    group.bench_with_input(
        BenchmarkId::new("json-encode-input", n),
        &input,
        |b, input| b.iter(|| serde_json::to_vec(black_box(input)).expect("encodes")),
    );
    group.bench_with_input(
        BenchmarkId::new("json-decode-input", n),
        &json,
        |b, json| {
            b.iter(|| serde_json::from_slice::<ElectionInput>(black_box(json)).expect("decodes"))
        },
    );
    group.finish();
    assert_eq!(loaded.error_count(), 0, "no plugin call fell back");
}

criterion::criterion_group!(benches, ranking, plugin);
criterion::criterion_main!(benches);
