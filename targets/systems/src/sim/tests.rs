//! The simulator on a small quorum store: delivery and partitions, crash points and restarts
//! from records, kills, pauses, clocks, and one run per seed.

use serde_json::{Value, json};

use super::*;
use crate::faults::{CrashPoint, CrashRule};
use crate::quorum::{QuorumNode, Settings};

/// Three nodes, every key on all three, writes and reads waiting for all three.
fn cluster(seed: u64, pairs: &str) -> Sim<QuorumNode> {
    let settings = Settings::new(3).apply([pairs]).expect("valid settings");
    let make = move |id, records, _| QuorumNode::new(id, settings.clone(), records);
    Sim::new(3, DEFAULT_LATENCY, seed, Box::new(make))
}

fn put(key: &str, value: i64) -> Request {
    Request::Kv(ClientRequest::Put {
        key: key.into(),
        value: json!(value),
        context: None,
        idempotency_key: None,
    })
}

fn get(key: &str) -> Request {
    Request::Kv(ClientRequest::Get { key: key.into() })
}

/// Sends `request` to `node` and runs the world for `ms`; the answer, if one came.
fn ask(sim: &mut Sim<QuorumNode>, node: NodeId, request: Request, ms: u64) -> Option<Answer> {
    let id = sim.submit(node, request);
    let mut answer = None;
    for _ in 0..ms {
        let t = sim.now() + 1;
        sim.run_until(t);
        if let Some((_, a)) = sim.replies().find(|(r, _)| *r == id) {
            answer = Some(a);
            break;
        }
    }
    answer
}

/// Faults that crash a node right after every key it stores, for `down_ms`.
fn crash_after_every_store(down_ms: u64) -> Faults {
    Faults {
        crash_after: vec![CrashRule {
            point: CrashPoint::Persist(vec!["Store".into()]),
            chance: 1.0,
            down_ms: Some(down_ms),
        }],
        ..Faults::default()
    }
}

fn value(answer: Option<Answer>) -> Value {
    match answer {
        Some(Answer::Reply(ClientReply::Ok { value, .. })) => value,
        other => panic!("not a value: {other:?}"),
    }
}

#[test]
fn writes_reach_every_replica_and_reads_see_them() {
    let mut sim = cluster(1, "n=3,w=3,r=3");
    let written = ask(&mut sim, 0, put("x", 7), 100);
    assert!(matches!(
        written,
        Some(Answer::Reply(ClientReply::Ok { .. }))
    ));
    assert_eq!(value(ask(&mut sim, 2, get("x"), 100)), json!(7));
    assert!(sim.counters().messages_delivered >= 4);
    assert_eq!(sim.counters().messages_dropped, 0);
}

#[test]
fn a_partition_cuts_links_one_way_too_until_healed() {
    let mut sim = cluster(1, "n=3,w=3,r=1,timeout-ms=300");
    // n1 cannot reach n3 (but hears from it): a write through n1 cannot reach all three.
    sim.set_faults(
        0,
        Faults {
            drop_to: vec!["n3".into()],
            ..Faults::default()
        },
    );
    let answer = ask(&mut sim, 0, put("x", 1), 1_000);
    assert!(
        matches!(
            answer,
            Some(Answer::Reply(
                ClientReply::Timeout(_) | ClientReply::Unavailable(_)
            ))
        ),
        "{answer:?}"
    );
    assert!(sim.counters().messages_dropped > 0);
    // Through n3 too: n1's acknowledgement to n3 is cut.
    let through_n3 = ask(&mut sim, 2, put("y", 2), 1_000);
    assert!(
        matches!(
            through_n3,
            Some(Answer::Reply(
                ClientReply::Timeout(_) | ClientReply::Unavailable(_)
            ))
        ),
        "{through_n3:?}"
    );
    sim.set_faults(0, Faults::default());
    let healed = ask(&mut sim, 0, put("x", 3), 1_000);
    assert!(
        matches!(healed, Some(Answer::Reply(ClientReply::Ok { .. }))),
        "{healed:?}"
    );
}

#[test]
fn a_crash_point_drops_the_node_and_restarts_it_from_its_records() {
    let mut sim = cluster(1, "n=3,w=1,r=1");
    sim.set_faults(0, crash_after_every_store(50));
    // n1 crashes right after it persists the write, before it answers.
    let answer = ask(&mut sim, 0, put("x", 5), 20);
    assert!(
        matches!(answer, Some(Answer::Reply(ClientReply::Timeout(_)))),
        "{answer:?}"
    );
    assert_eq!(sim.counters().crashes, 1);
    assert!(sim.node(0).is_none(), "down for 50 ms");
    assert!(!sim.records(0).is_empty(), "what it synced is kept");
    assert!(matches!(
        ask(&mut sim, 0, get("x"), 20),
        Some(Answer::Refused(_))
    ));
    sim.set_faults(0, Faults::default());
    sim.run_until(sim.now() + 60);
    assert!(sim.node(0).is_some(), "restarted");
    let local = sim.node(0).unwrap().describe_key("x");
    assert!(
        local.to_string().contains('5'),
        "recovered from its records: {local}"
    );
}

#[test]
fn a_killed_node_refuses_and_stays_down_until_restarted() {
    let mut sim = cluster(1, "n=3,w=1,r=1");
    sim.set_faults(1, crash_after_every_store(10));
    sim.submit(1, put("x", 1));
    while sim.counters().crashes == 0 {
        assert!(sim.run_next(), "the write reaches n2 and crashes it");
    }
    assert!(sim.node(1).is_none(), "down, its restart queued");
    // Killed while its crash point's restart is queued: it stays down.
    sim.kill(1);
    sim.run_until(sim.now() + 100);
    assert!(sim.node(1).is_none());
    assert!(matches!(
        ask(&mut sim, 1, get("x"), 20),
        Some(Answer::Refused(_))
    ));
    sim.restart(1);
    assert!(sim.node(1).is_some());
}

#[test]
fn a_paused_node_holds_its_inputs_until_it_resumes() {
    let mut sim = cluster(1, "n=3,w=1,r=1");
    sim.pause(2);
    let held = sim.submit(2, get("x"));
    sim.run_until(500);
    assert_eq!(sim.replies().count(), 0, "no answer while stopped");
    sim.resume(2);
    sim.run_until(600);
    let answered: Vec<RequestId> = sim.replies().map(|(id, _)| id).collect();
    assert_eq!(
        answered,
        [held],
        "the request that waited is answered after the resume"
    );
}

#[test]
fn clock_offsets_move_only_that_nodes_wall_clock() {
    let mut sim = cluster(1, "n=3");
    sim.set_faults(
        1,
        Faults {
            clock_offset_ms: -5_000,
            ..Faults::default()
        },
    );
    sim.run_until(10);
    assert_eq!(sim.clock(0).wall_ms - sim.clock(1).wall_ms, 5_000);
    assert_eq!(sim.clock(0).mono_ms, sim.clock(1).mono_ms);
}

#[test]
fn every_link_draws_its_own_latency_range_inside_the_clusters() {
    let sim = cluster(3, "n=3");
    let mut links: Vec<Link> = (0..3)
        .flat_map(|from| (0..3).map(move |to| Link::Peer { from, to }))
        .collect();
    links.extend((0..3).map(Link::Client));
    let ranges: Vec<Latency> = links.iter().map(|&link| sim.latency(link)).collect();
    for range in &ranges {
        assert!(DEFAULT_LATENCY.min_ms <= range.min_ms, "{range:?}");
        assert!(range.min_ms <= range.max_ms, "{range:?}");
        assert!(range.max_ms <= DEFAULT_LATENCY.max_ms, "{range:?}");
    }
    assert!(
        ranges.iter().any(|r| *r != ranges[0]),
        "links differ: {ranges:?}"
    );
    let again = cluster(3, "n=3");
    assert!(
        links.iter().all(|&l| again.latency(l) == sim.latency(l)),
        "one seed, one network"
    );
}

#[test]
fn a_slow_link_delays_only_what_crosses_it() {
    let mut sim = cluster(1, "n=3,w=3,r=1").with_trace();
    let slow = Latency {
        min_ms: 200,
        max_ms: 200,
    };
    sim.set_latency(Link::Peer { from: 0, to: 2 }, slow);
    let id = sim.submit(0, put("x", 1));
    sim.run_until(1_000);
    let replied: Vec<RequestId> = sim.replies().map(|(r, _)| r).collect();
    assert_eq!(replied, [id], "the write completes, late");
    let trace = sim.trace().expect("kept").events();
    let arrived = |to: NodeId| {
        trace
            .iter()
            .find(|e| e.node == to && e.other == 0 && matches!(e.what, What::Deliver(_)))
            .map(|e| e.at)
            .expect("n1 wrote to every replica")
    };
    let client = trace
        .iter()
        .find(|e| e.what == What::Client)
        .expect("the request arrived")
        .at;
    assert!(arrived(1) - client <= DEFAULT_LATENCY.max_ms);
    assert_eq!(
        arrived(2) - client,
        200,
        "n1 to n3 takes the slow link's 200 ms"
    );
}

/// A busy run: writes and reads through every node, a partition, a crash point, a kill.
fn busy(seed: u64) -> Trace {
    let mut sim = cluster(seed, "n=3,w=2,r=2").with_trace();
    for i in 0..300u64 {
        let node = (i % 3) as NodeId;
        let request = if i % 2 == 0 {
            put("k", i as i64)
        } else {
            get("k")
        };
        sim.submit(node, request);
        if i == 100 {
            sim.set_faults(
                0,
                Faults {
                    drop_to: vec!["n2".into()],
                    duplicate: 0.3,
                    jitter_ms: 20,
                    ..Faults::default()
                },
            );
        }
        if i == 200 {
            sim.kill(2);
        }
        let t = sim.now() + 3;
        sim.run_until(t);
    }
    sim.trace().expect("kept").clone()
}

#[test]
fn a_seed_gives_one_run_event_for_event() {
    let (a, b) = (busy(7), busy(7));
    assert!(a.len() > 1_000, "{}", a.len());
    assert_eq!(a.first_difference(&b), None);
    let other = busy(8);
    assert!(
        a.first_difference(&other).is_some(),
        "another seed, another run"
    );
}
