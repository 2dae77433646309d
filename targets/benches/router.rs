//! The router's throughput: two in-process nodes play ping-pong through it (parsed, routed,
//! printed and parsed again, as with real node processes), a thousand messages in flight.
//! Run with `cargo bench -p faultline-targets --bench router`; the figure is messages routed
//! per second (divan's item throughput).

use std::time::Duration;

use divan::counter::ItemsCount;
use faultline_targets::maelstrom::message::Message;
use faultline_targets::maelstrom::network::Latency;
use faultline_targets::maelstrom::router::{self, Input};
use serde_json::json;
use tokio::sync::mpsc;

fn main() {
    divan::main();
}

const MESSAGES: u64 = 100_000;
const IN_FLIGHT: u64 = 1_000;

/// Routes `MESSAGES` messages between two nodes that answer each message with the next.
async fn ping_pong() {
    let names = vec!["n1".to_string(), "n2".to_string()];
    let router = router::spawn(names.clone(), Latency::default(), 1);
    let (done, mut finished) = mpsc::unbounded_channel();
    for node in 0..2 {
        let (stdin, mut lines) = mpsc::unbounded_channel::<String>();
        let why = String::new();
        router
            .send(Input::Attach {
                node,
                generation: 0,
                stdin: Some(stdin),
                why,
            })
            .unwrap();
        let (router, names, done) = (router.clone(), names.clone(), done.clone());
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                let got = Message::parse(line.trim_end()).unwrap();
                let n = got.body["n"].as_u64().unwrap();
                if n >= MESSAGES {
                    let _ = done.send(());
                    continue;
                }
                let body = json!({"type": "ping", "n": n + IN_FLIGHT})
                    .as_object()
                    .unwrap()
                    .clone();
                let reply = Message {
                    src: names[node].clone(),
                    dest: got.src,
                    body,
                };
                let line = Ok(Message::parse(&reply.to_line()).unwrap());
                router
                    .send(Input::Printed {
                        node,
                        generation: 0,
                        line,
                    })
                    .unwrap();
            }
        });
    }
    for n in 0..IN_FLIGHT {
        let body = json!({"type": "ping", "n": n}).as_object().unwrap().clone();
        let line = Ok(Message {
            src: "n1".into(),
            dest: "n2".into(),
            body,
        });
        router
            .send(Input::Printed {
                node: 0,
                generation: 0,
                line,
            })
            .unwrap();
    }
    for _ in 0..IN_FLIGHT {
        tokio::time::timeout(Duration::from_secs(60), finished.recv())
            .await
            .unwrap();
    }
}

#[divan::bench(sample_count = 5)]
fn route_messages(bencher: divan::Bencher) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    bencher
        .counter(ItemsCount::new(MESSAGES + IN_FLIGHT))
        .bench(|| runtime.block_on(ping_pong()));
}
