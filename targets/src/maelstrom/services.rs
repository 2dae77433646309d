//! The services nodes may call, as Maelstrom provides them (maelstrom's `doc/services.md`),
//! without I/O: `lin-kv` (linearizable), `seq-kv` (sequentially consistent: a client may read
//! a past state, but never one older than it has seen or written), `lww-kv` (replicas that
//! take writes alone and merge by timestamp now and then), and `lin-tso` (a counter).
//!
//! The KV services answer `read`, `write` and `cas` (with `create_if_not_exists`) with the
//! protocol's codes: 20 for a missing key, 22 when `from` does not match.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::message::{self, Body, KEY_MISSING, PRECONDITION_FAILED};

/// The services' names.
pub const NAMES: [&str; 4] = ["lin-kv", "seq-kv", "lww-kv", "lin-tso"];

/// How many versions of a key `seq-kv` keeps to serve stale reads from.
const SEQ_VERSIONS: usize = 16;
/// How many independent replicas `lww-kv` simulates (Maelstrom's default).
const LWW_REPLICAS: usize = 5;
/// How often `lww-kv`'s replicas merge.
const LWW_GOSSIP: Duration = Duration::from_millis(100);

/// A map of keys (JSON text) to values.
type Store = BTreeMap<String, Value>;

/// Every service's state.
#[derive(Debug)]
pub struct Services {
    rng: ChaCha8Rng,
    lin: Store,
    seq: SeqKv,
    lww: LwwKv,
    tso: u64,
}

impl Services {
    /// Empty services, their choices seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Services {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5e41_1ce5),
            lin: Store::new(),
            seq: SeqKv::default(),
            lww: LwwKv::default(),
            tso: 0,
        }
    }

    /// Whether `name` is a service.
    pub fn is_service(name: &str) -> bool {
        NAMES.contains(&name)
    }

    /// Service `service` answers request `body` from `from`, at `now` (time since the run
    /// began); `None` for a message that asks for no answer (no `msg_id`).
    pub fn handle(
        &mut self,
        service: &str,
        from: &str,
        body: &Body,
        now: Duration,
    ) -> Option<Body> {
        let msg_id = body.get("msg_id").and_then(Value::as_u64)?;
        let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
        let mut reply = match service {
            "lin-tso" if kind == "ts" => {
                self.tso += 1;
                ok("ts_ok", [("ts", Value::from(self.tso))])
            }
            "lin-kv" => kv(&mut self.lin, body),
            "seq-kv" => self.seq.handle(from, body, &mut self.rng),
            "lww-kv" => self.lww.handle(body, now, &mut self.rng),
            _ => message::error(10, &format!("{service} does not take `{kind}`"), None),
        };
        reply.insert("in_reply_to".into(), Value::from(msg_id));
        Some(reply)
    }
}

fn ok<const N: usize>(kind: &str, fields: [(&str, Value); N]) -> Body {
    let mut body = Body::new();
    body.insert("type".into(), Value::from(kind));
    for (k, v) in fields {
        body.insert(k.into(), v);
    }
    body
}

/// The key of a KV request, as the store's map key.
fn key_of(body: &Body) -> String {
    body.get("key").unwrap_or(&Value::Null).to_string()
}

/// A KV request applied to `store`: the answer, and whether it changed the store.
fn kv(store: &mut Store, body: &Body) -> Body {
    kv_step(store, body).0
}

fn kv_step(store: &mut Store, body: &Body) -> (Body, bool) {
    let key = key_of(body);
    let field = |name: &str| body.get(name).cloned().unwrap_or(Value::Null);
    match body.get("type").and_then(Value::as_str).unwrap_or("") {
        "read" => match store.get(&key) {
            Some(v) => (ok("read_ok", [("value", v.clone())]), false),
            None => (missing(), false),
        },
        "write" => {
            store.insert(key, field("value"));
            (ok("write_ok", []), true)
        }
        "cas" => {
            let create = body.get("create_if_not_exists").and_then(Value::as_bool) == Some(true);
            match store.get(&key) {
                None if !create => (missing(), false),
                Some(current) if *current != field("from") => {
                    let text = format!("expected {}, but had {current}", field("from"));
                    (message::error(PRECONDITION_FAILED, &text, None), false)
                }
                _ => {
                    store.insert(key, field("to"));
                    (ok("cas_ok", []), true)
                }
            }
        }
        other => (
            message::error(10, &format!("a KV service does not take `{other}`"), None),
            false,
        ),
    }
}

fn missing() -> Body {
    message::error(KEY_MISSING, "key does not exist", None)
}

/// `seq-kv`: every update applies to the newest state (so all updates are in one total
/// order); a read sees a state no older than the newest its client has seen or written,
/// chosen at random up to the newest — stale, but monotonic per client.
#[derive(Debug, Default)]
struct SeqKv {
    /// The newest state's number.
    version: u64,
    /// Per key: its last versions, oldest first, (state number, value or `None` for absent).
    history: BTreeMap<String, Vec<(u64, Value)>>,
    /// Per client: the oldest state it may still see.
    seen: BTreeMap<String, u64>,
}

impl SeqKv {
    fn handle(&mut self, from: &str, body: &Body, rng: &mut ChaCha8Rng) -> Body {
        let key = key_of(body);
        if body.get("type").and_then(Value::as_str) == Some("read") {
            let versions = self.history.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let oldest_kept = if versions.len() >= SEQ_VERSIONS {
                versions[0].0
            } else {
                0
            };
            let floor = self.seen.get(from).copied().unwrap_or(0).max(oldest_kept);
            let at = rng.random_range(floor..=self.version);
            self.seen.insert(from.to_string(), at);
            return match versions.iter().rev().find(|(v, _)| *v <= at) {
                Some((_, value)) => ok("read_ok", [("value", value.clone())]),
                None => missing(),
            };
        }
        // An update works on the newest state and makes the next.
        let mut newest = Store::new();
        if let Some((_, v)) = self.history.get(&key).and_then(|h| h.last()) {
            newest.insert(key.clone(), v.clone());
        }
        let (reply, changed) = kv_step(&mut newest, body);
        self.seen.insert(from.to_string(), self.version);
        if changed {
            self.version += 1;
            let versions = self.history.entry(key.clone()).or_default();
            versions.push((self.version, newest.remove(&key).unwrap_or(Value::Null)));
            if versions.len() > SEQ_VERSIONS {
                versions.remove(0);
            }
            self.seen.insert(from.to_string(), self.version);
        }
        reply
    }
}

/// `lww-kv`: independent replicas, each request served by one at random; a write is stamped
/// with the time; every [`LWW_GOSSIP`] the replicas merge, the newest stamp winning.
#[derive(Debug, Default)]
struct LwwKv {
    replicas: Vec<BTreeMap<String, (Duration, u64, Value)>>,
    merged_at: Duration,
    writes: u64,
}

impl LwwKv {
    fn handle(&mut self, body: &Body, now: Duration, rng: &mut ChaCha8Rng) -> Body {
        if self.replicas.is_empty() {
            self.replicas = vec![BTreeMap::new(); LWW_REPLICAS];
        }
        if now >= self.merged_at + LWW_GOSSIP {
            self.merge();
            self.merged_at = now;
        }
        let replica = &mut self.replicas[rng.random_range(0..LWW_REPLICAS)];
        let mut store: Store = replica
            .iter()
            .map(|(k, (_, _, v))| (k.clone(), v.clone()))
            .collect();
        let (reply, changed) = kv_step(&mut store, body);
        if changed {
            self.writes += 1;
            let key = key_of(body);
            let value = store.remove(&key).unwrap_or(Value::Null);
            replica.insert(key, (now, self.writes, value));
        }
        reply
    }

    fn merge(&mut self) {
        let mut newest: BTreeMap<String, (Duration, u64, Value)> = BTreeMap::new();
        for replica in &self.replicas {
            for (k, stamped) in replica {
                if newest
                    .get(k)
                    .is_none_or(|n| (n.0, n.1) < (stamped.0, stamped.1))
                {
                    newest.insert(k.clone(), stamped.clone());
                }
            }
        }
        for replica in &mut self.replicas {
            replica.clone_from(&newest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> Body {
        let mut body = v.as_object().unwrap().clone();
        body.insert("msg_id".into(), json!(1));
        body
    }

    fn call(s: &mut Services, service: &str, from: &str, v: Value) -> Value {
        Value::Object(s.handle(service, from, &req(v), Duration::ZERO).unwrap())
    }

    #[test]
    fn lin_kv_reads_writes_and_compares() {
        let mut s = Services::new(1);
        let r = call(&mut s, "lin-kv", "n1", json!({"type": "read", "key": 1}));
        assert_eq!(
            (
                r["type"].clone(),
                r["code"].clone(),
                r["in_reply_to"].clone()
            ),
            (json!("error"), json!(20), json!(1))
        );
        let r = call(
            &mut s,
            "lin-kv",
            "n1",
            json!({"type": "cas", "key": 1, "from": 0, "to": 1, "create_if_not_exists": true}),
        );
        assert_eq!(r["type"], "cas_ok");
        let r = call(
            &mut s,
            "lin-kv",
            "n2",
            json!({"type": "cas", "key": 1, "from": 0, "to": 2}),
        );
        assert_eq!(r["code"], 22);
        call(
            &mut s,
            "lin-kv",
            "n2",
            json!({"type": "write", "key": 1, "value": 5}),
        );
        assert_eq!(
            call(&mut s, "lin-kv", "n1", json!({"type": "read", "key": 1}))["value"],
            5
        );
        assert_eq!(
            call(&mut s, "lin-tso", "n1", json!({"type": "ts"}))["ts"],
            1
        );
        assert_eq!(
            call(&mut s, "lin-tso", "n2", json!({"type": "ts"}))["ts"],
            2
        );
    }

    #[test]
    fn seq_kv_is_stale_but_monotonic_per_client_and_fresh_after_its_own_write() {
        let mut s = Services::new(3);
        let mut stale = 0;
        for i in 1..=200 {
            call(
                &mut s,
                "seq-kv",
                "n1",
                json!({"type": "write", "key": "x", "value": i}),
            );
            let mut last = 0;
            for _ in 0..3 {
                let r = call(&mut s, "seq-kv", "n2", json!({"type": "read", "key": "x"}));
                let v = r["value"].as_i64().unwrap_or(0);
                assert!(v >= last, "n2 read {v} after {last}");
                stale += (v < i) as u32;
                last = v;
            }
            let own = call(&mut s, "seq-kv", "n1", json!({"type": "read", "key": "x"}));
            assert_eq!(own["value"], i, "n1 reads its own write");
        }
        assert!(stale > 0, "seq-kv never served a stale read");
    }

    #[test]
    fn lww_kv_replicas_converge_after_gossip() {
        let mut s = Services::new(5);
        let at = |ms| Duration::from_millis(ms);
        let body = |v: Value| req(v);
        s.handle(
            "lww-kv",
            "n1",
            &body(json!({"type": "write", "key": 1, "value": 7})),
            at(1),
        );
        let reads: Vec<Value> = (0..50)
            .map(|_| {
                Value::Object(
                    s.handle(
                        "lww-kv",
                        "n1",
                        &body(json!({"type": "read", "key": 1})),
                        at(150),
                    )
                    .unwrap(),
                )["value"]
                    .clone()
            })
            .collect();
        assert!(reads.iter().all(|v| *v == json!(7)), "{reads:?}");
    }
}
