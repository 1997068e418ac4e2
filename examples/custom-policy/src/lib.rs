//! # custom-policy
//!
//! An example of a user's own baton leader policy, [`ZonePreference`]: prefer the instances in
//! one zone, then the least loaded, then the oldest. One crate, used two ways:
//!
//! - **statically** — depend on it and hand a `ZonePreference::new("eu-1")` to a node or a
//!   chain like any built-in policy (see `examples/static_use.rs`);
//! - **as a plugin** — `cargo build -p custom-policy --release` builds
//!   `target/release/libcustom_policy.so`, which a node loads from its config:
//!   `policy = { plugin = "target/release/libcustom_policy.so", config = { zone = "eu-1" } }`.
//!
//! The crate depends on `baton-core` only, without default features (no tokio), and the single
//! line `baton_core::export_policy!(ZonePreference)` is all that makes it a plugin.

mod zone;

pub use zone::ZonePreference;

baton_core::export_policy!(ZonePreference);

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::plugin::abi::{self, PluginBuffer};
    use baton_core::plugin::{PluginPolicy, serde_json};
    use baton_core::{Candidate, ElectionInput, LeaderPolicy, MemberId, ranking_from_tiers};
    use std::ffi::{CStr, c_void};

    fn candidate(node: &str, zone: Option<&str>, load: Option<&str>, started: u64) -> Candidate {
        let mut labels = baton_core::Labels::new();
        if let Some(z) = zone {
            labels.insert("zone".into(), z.into());
        }
        if let Some(l) = load {
            labels.insert("load".into(), l.into());
        }
        Candidate {
            member: MemberId::new(node, 0),
            started_at_ms: started,
            incarnation: baton_core::Incarnation(1),
            hardware: Default::default(),
            labels,
            services: [].into(),
            leads: 0,
            version: None,
        }
    }

    fn input(candidates: Vec<Candidate>) -> ElectionInput {
        ElectionInput {
            group: "g".into(),
            candidates,
            ..Default::default()
        }
    }

    fn nodes(ranking: &[MemberId]) -> Vec<&str> {
        ranking.iter().map(|m| m.node.as_str()).collect()
    }

    /// How the policy for zone eu-1 ranks `candidates`: their node names, first first.
    fn eu1_ranking(candidates: Vec<Candidate>) -> Vec<String> {
        let ranking = ZonePreference::new("eu-1").rank(&input(candidates));
        nodes(&ranking).into_iter().map(String::from).collect()
    }

    #[test]
    fn zone_beats_load_beats_age_beats_member_id() {
        assert_eq!(
            eu1_ranking(vec![
                candidate("a", Some("us-1"), Some("0"), 1),
                candidate("b", Some("eu-1"), Some("5"), 1),
                candidate("c", Some("eu-1"), Some("2"), 9),
                candidate("d", Some("eu-1"), Some("2"), 3),
                candidate("e", Some("eu-1"), Some("2"), 3),
                candidate("f", None, None, 0),
            ]),
            ["d", "e", "c", "b", "a", "f"]
        );
    }

    #[test]
    fn missing_or_unparsable_load_is_worst() {
        assert_eq!(
            eu1_ranking(vec![
                candidate("a", Some("eu-1"), None, 0),
                candidate("b", Some("eu-1"), Some("lots"), 0),
                candidate("c", Some("eu-1"), Some("NaN"), 0),
                candidate("d", Some("eu-1"), Some("1e9"), 5),
                candidate("e", Some("eu-1"), Some(" 0.5 "), 5),
                candidate("f", Some("eu-1"), Some("-0"), 5),
            ]),
            ["f", "e", "d", "a", "b", "c"]
        );
    }

    #[test]
    fn tiers_group_ties_and_agree_with_rank() {
        let p = ZonePreference::new("eu-1");
        let inp = input(vec![
            candidate("a", Some("eu-1"), Some("1"), 7),
            candidate("b", Some("eu-1"), Some("1.0"), 7),
            candidate("c", Some("eu-2"), None, 7),
            candidate("d", None, Some("oops"), 7),
            candidate("e", Some("eu-1"), Some("1"), 8),
        ]);
        let tiers = p.tiers(&inp);
        let tier_nodes: Vec<Vec<&str>> = tiers.iter().map(|t| nodes(t)).collect();
        assert_eq!(tier_nodes, vec![vec!["a", "b"], vec!["e"], vec!["c", "d"]]);
        assert_eq!(ranking_from_tiers(tiers), p.rank(&inp));
        assert!(p.tiers(&input(vec![])).is_empty());
    }

    #[test]
    fn config_is_checked() {
        let ok = ZonePreference::from_config(serde_json::json!({ "zone": "eu-1" })).unwrap();
        assert_eq!(ok.zone(), "eu-1");
        for (bad, needle) in [
            (serde_json::Value::Null, "needs `config = { zone"),
            (serde_json::json!({}), "`zone` is missing"),
            (serde_json::json!({ "zone": 3 }), "must be a string"),
            (serde_json::json!({ "zone": " " }), "is empty"),
            (
                serde_json::json!({ "zone": "a", "zoen": "b" }),
                "unknown key `zoen`",
            ),
        ] {
            let e = ZonePreference::from_config(bad).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    /// Drives the exported table in-process (no dlopen), the way a host would.
    #[test]
    fn exported_table_ranks_like_the_policy() {
        // SAFETY: `baton_policy_v1` returns a pointer to a static table in this binary.
        let table = unsafe { &*baton_policy_v1() };
        assert_eq!(table.header, abi::PluginHeader::CURRENT);
        // SAFETY: the name is a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(table.name) };
        assert_eq!(name.to_str().unwrap(), "zone-preference");
        let (create, rank, free, destroy) = (
            table.create.unwrap(),
            table.rank.unwrap(),
            table.free.unwrap(),
            table.destroy.unwrap(),
        );

        let config = br#"{"zone":"eu-1"}"#;
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut error = PluginBuffer::EMPTY;
        // SAFETY: valid config bytes and out-pointers to live locals.
        let status = unsafe { create(config.as_ptr(), config.len(), &mut instance, &mut error) };
        assert_eq!(status, abi::STATUS_OK);
        assert!(error.is_empty() && !instance.is_null());

        let inp = input(vec![
            candidate("a", Some("us-1"), Some("0"), 1),
            candidate("b", Some("eu-1"), Some("5"), 1),
        ]);
        let request = abi::encode_request(&inp, false).unwrap();
        let mut out = PluginBuffer::EMPTY;
        // SAFETY: a live instance of this table, valid input bytes, a live out buffer.
        let status = unsafe { rank(instance, request.as_ptr(), request.len(), &mut out) };
        assert_eq!(status, abi::STATUS_OK);
        // SAFETY: filled by `rank`, not yet freed.
        let response = abi::decode_response(unsafe { out.as_slice() }).unwrap();
        // SAFETY: freed once, by the table's own `free`.
        unsafe { free(out) };
        assert_eq!(
            response,
            abi::Answer::Ranking(ZonePreference::new("eu-1").rank(&inp))
        );

        let bad = br#"{"zone":3}"#;
        let mut other: *mut c_void = std::ptr::null_mut();
        let mut error = PluginBuffer::EMPTY;
        // SAFETY: as for the first `create`.
        let status = unsafe { create(bad.as_ptr(), bad.len(), &mut other, &mut error) };
        assert_eq!(status, abi::STATUS_ERROR);
        assert!(other.is_null());
        // SAFETY: filled by `create`, not yet freed.
        let message = String::from_utf8(unsafe { error.as_slice() }.to_vec()).unwrap();
        // SAFETY: freed once, by the table's own `free`.
        unsafe { free(error) };
        assert!(message.contains("must be a string"), "{message}");

        // SAFETY: made by this table's `create`, destroyed once.
        unsafe { destroy(instance) };
    }
}
