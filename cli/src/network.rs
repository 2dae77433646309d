//! The routed network's figures for a run against Maelstrom nodes: messages routed and per
//! second, the nodes' own messages (to each other and with services) per client operation
//! (what Maelstrom users call msgs-per-op), drops, and messages between nodes by type.

use faultline_targets::maelstrom::router::NetStats;
use serde_json::{Value, json};
use tabled::settings::Style;
use tabled::{Table, Tabled};

/// The figures as `network.json` and the verdict's `network` hold them.
pub(crate) fn report(stats: &NetStats, operations: u64) -> Value {
    json!({
        "routed": stats.routed(),
        "routed_per_s": per_second(stats),
        "between_nodes": stats.between_nodes,
        "with_clients": stats.with_clients,
        "with_services": stats.with_services,
        "msgs_per_op": per_op(stats, operations),
        "delivered": stats.delivered,
        "dropped": {
            "partition": stats.dropped_partition,
            "loss": stats.dropped_loss,
            "node_down": stats.dropped_down,
            "unknown_destination": stats.dropped_unknown,
        },
        "duplicated": stats.duplicated,
        "between_nodes_by_type": stats.by_type,
    })
}

fn per_second(stats: &NetStats) -> f64 {
    stats.routed() as f64 / stats.seconds.max(1e-9)
}

/// Messages between nodes and with services per client operation.
fn per_op(stats: &NetStats, operations: u64) -> f64 {
    (stats.between_nodes + stats.with_services) as f64 / operations.max(1) as f64
}

#[derive(Tabled)]
struct Row {
    messages: String,
    count: String,
}

/// The figures as a table for the terminal.
pub(crate) fn table(stats: &NetStats, operations: u64) -> String {
    let mut rows = vec![
        (
            "routed",
            format!("{} ({:.0}/s)", stats.routed(), per_second(stats)),
        ),
        ("between nodes", stats.between_nodes.to_string()),
        ("with services", stats.with_services.to_string()),
        (
            "  per operation",
            format!(
                "{:.2} (between nodes and with services)",
                per_op(stats, operations)
            ),
        ),
        ("with clients", stats.with_clients.to_string()),
        (
            "dropped",
            format!(
                "{} by partitions, {} lost, {} to a node down",
                stats.dropped_partition, stats.dropped_loss, stats.dropped_down
            ),
        ),
    ];
    rows.extend(
        stats
            .by_type
            .iter()
            .map(|(kind, n)| ("  of type", format!("{kind}: {n}"))),
    );
    let rows = rows.into_iter().map(|(m, c)| Row {
        messages: m.to_string(),
        count: c,
    });
    Table::new(rows).with(Style::sharp()).to_string()
}
