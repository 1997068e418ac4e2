//! [`GroupName`]: it behaves as the string it holds (order, hash, lookups, formatting), clones
//! share one allocation, and every encoding — postcard on the wire, JSON for plugins, TOML in
//! the config — is byte for byte that of a `String`.

use super::*;
use crate::message::{HeartbeatAck, Message, StepDown};
use std::collections::{BTreeSet, HashSet};

fn names() -> Vec<&'static str> {
    // Empty, plain, non-ASCII, and long enough (> 127 bytes) for a two-byte length prefix.
    let long: &'static str = Box::leak("x".repeat(300).into_boxed_str());
    vec!["", "tracked", "grüße-✓", long]
}

#[test]
fn a_group_name_encodes_in_postcard_exactly_as_a_string() {
    for s in names() {
        let as_string = postcard::to_allocvec(&s.to_string()).unwrap();
        let as_name = postcard::to_allocvec(&GroupName::from(s)).unwrap();
        assert_eq!(as_name, as_string, "{s:?}");
        let back: GroupName = postcard::from_bytes(&as_string).unwrap();
        assert_eq!(back, s);
    }
}

/// `StepDown` as it was declared with a `String` group: postcard is positional, so a struct
/// with the same fields in the same order encodes as the message did.
#[derive(Serialize)]
struct StringStepDown {
    group: String,
    term: Term,
    from: MemberId,
    successor: Option<MemberId>,
    /// `Resignation`'s variant index.
    why: u8,
}

#[test]
fn a_message_carrying_a_group_has_the_bytes_it_had_with_a_string() {
    let msg = Message::StepDown(StepDown {
        group: "orders".into(),
        term: 7,
        from: MemberId::new("a", 1),
        successor: Some(MemberId::new("b", 0)),
        why: crate::message::Resignation::Requested,
    });
    let bytes = postcard::to_allocvec(&msg).unwrap();
    let old = StringStepDown {
        group: "orders".to_string(),
        term: 7,
        from: MemberId::new("a", 1),
        successor: Some(MemberId::new("b", 0)),
        why: 1,
    };
    // `Message::StepDown` is variant 4 (a one-byte varint), then the payload.
    let mut want = vec![4u8];
    want.extend(postcard::to_allocvec(&old).unwrap());
    assert_eq!(bytes, want);
    // Spelled out, so that a change to either side shows: variant, "orders", term, a#1, Some(b#0),
    // Requested.
    assert_eq!(
        bytes,
        [&[4u8, 6][..], b"orders", &[7, 1, b'a', 1, 1, 1, b'b', 0, 1]].concat()
    );
    assert_eq!(postcard::from_bytes::<Message>(&want).unwrap(), msg);
}

#[test]
fn a_list_of_groups_on_the_wire_is_a_list_of_strings() {
    let ack = HeartbeatAck {
        seq: 3,
        rejected: vec![("a".into(), 5), ("b".into(), 9)],
        version: 7,
    };
    let old: (u64, Vec<(String, Term)>, u64) = (3, vec![("a".into(), 5), ("b".into(), 9)], 7);
    assert_eq!(
        postcard::to_allocvec(&ack).unwrap(),
        postcard::to_allocvec(&old).unwrap()
    );
}

#[test]
fn a_group_name_is_a_bare_string_in_json_also_as_a_map_key() {
    let mut input = ElectionInput::of_nodes("g", &["a"]);
    input.candidates[0].services = ["g".into(), "h".into()].into();
    std::sync::Arc::make_mut(&mut input.leaders).insert("h".into(), NodeId::new("b"));
    let json = serde_json::to_string(&input).unwrap();
    assert_eq!(
        json,
        r#"{"group":"g","candidates":[{"member":{"node":"a","seq":0},"started_at_ms":0,"incarnation":0,"hardware":{"cpus":0,"memory_bytes":0,"weight":null},"labels":{},"services":["g","h"],"leads":0}],"incumbent":null,"leaders":{"h":"b"}}"#
    );
    let back: ElectionInput = serde_json::from_str(&json).unwrap();
    assert_eq!(back, input);
}

#[test]
fn a_group_name_reads_from_toml_as_a_string() {
    #[derive(Deserialize)]
    struct G {
        name: GroupName,
    }
    let g: G = toml::from_str("name = \"tracked\"").unwrap();
    assert_eq!(g.name, "tracked");
    let e = toml::from_str::<G>("name = 3")
        .err()
        .expect("a number is no name");
    assert!(e.to_string().contains("a group name"), "{e}");
}

#[test]
fn a_group_name_orders_hashes_and_looks_up_as_its_string() {
    let mut sorted: Vec<GroupName> = ["b", "a", "ab", ""].into_iter().map(Into::into).collect();
    sorted.sort();
    assert_eq!(sorted, ["", "a", "ab", "b"]);
    let map: BTreeMap<GroupName, u32> = [("orders".into(), 1), ("billing".into(), 2)].into();
    assert_eq!(map.get("orders"), Some(&1));
    assert_eq!(map.get("nosuch"), None);
    let set: BTreeSet<GroupName> = map.keys().cloned().collect();
    assert!(set.contains("billing"));
    let hashed: HashSet<GroupName> = map.keys().cloned().collect();
    assert!(hashed.contains("billing"), "Hash agrees with str's");
    assert!(!hashed.contains("Billing"));
}

#[test]
fn a_group_name_prints_and_compares_as_its_string() {
    let g = GroupName::from("orders");
    assert_eq!(g.to_string(), "orders");
    assert_eq!(format!("{g:?}"), format!("{:?}", "orders"));
    assert_eq!(format!("{:?}", Some(&g)), r#"Some("orders")"#);
    let owned = String::from("orders");
    assert_eq!(g, "orders");
    assert_eq!("orders", g);
    assert_eq!(g, *"orders");
    assert_eq!(g, owned);
    assert_eq!(owned, g);
    assert_ne!(g, "order");
    assert_eq!(g.len(), 6, "derefs to str");
    assert_eq!(String::from(g.clone()), "orders");
    assert_eq!("orders".parse::<GroupName>().unwrap(), g);
    assert_eq!(GroupName::default(), "");
}

#[test]
fn cloning_a_group_name_shares_the_string() {
    let g = GroupName::from(String::from("orders"));
    let c = g.clone();
    let r = GroupName::from(&g);
    assert_eq!(c.as_ptr(), g.as_ptr(), "no copy of the bytes");
    assert_eq!(r.as_ptr(), g.as_ptr());
    assert_ne!(GroupName::from("orders").as_ptr(), g.as_ptr());
}

#[test]
fn ids_and_leaderships_display_as_people_read_them() {
    assert_eq!(NodeId::new("a").to_string(), "a");
    assert_eq!(MemberId::new("a", 3).to_string(), "a#3");
    let mut l = Leadership::none("web");
    assert_eq!(l.to_string(), "web: no leader (term 0)");
    l.leader = Some(MemberId::new("a", 3));
    l.term = 7;
    assert_eq!(l.to_string(), "web: leader a#3 (term 7)");
    l.is_me = true;
    assert_eq!(l.to_string(), "web: leader a#3 (term 7, this node)");
    // A leader not known while a term is: the term still shows.
    l.leader = None;
    assert_eq!(l.to_string(), "web: no leader (term 7)");
}
