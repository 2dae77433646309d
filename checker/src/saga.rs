//! The saga checker (DESIGN §3.3): after the run and a quiet period, every order of a checkout
//! is all-done or all-undone, nothing is stuck in between, stock and money are conserved, no
//! step was applied twice, and every order a client saw completed is completed.
//!
//! It judges [`SagaFacts`]: the orders the clients placed (with what each client was told and
//! the status the coordinator reports at the end) and each service's final state — its totals
//! (stock per SKU, balance per account, shipments) and, per order, how many times its step was
//! applied and undone. Effects are counted per order and service:
//!
//! | final status | each service must hold |
//! |---|---|
//! | `completed` | the step applied once, not undone |
//! | `compensated`, `rejected` | nothing, or the step applied once and undone once |
//! | `pending` or anything else | — the order is stuck: FAIL |
//!
//! A step applied more than once (a payment charged twice for one order) is a FAIL whatever
//! the status; so is a service holding effects of an order the coordinator does not know (its
//! log forgot it), and totals that differ from the initial ones minus what completed orders
//! took. Missing service states give UNKNOWN. Every violation names the order and the
//! services' entries that prove it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::verdict::Validity;

/// The three services of a checkout, in saga order.
pub const SERVICES: [&str; 3] = ["inventory", "payment", "shipping"];

/// One order as the clients placed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderFacts {
    /// Its id.
    pub order: String,
    /// What it reserves.
    pub sku: String,
    /// How many.
    pub qty: i64,
    /// Who pays.
    pub account: String,
    /// How much.
    pub amount: i64,
    /// The last outcome a client was told (`completed`, `compensated`, `rejected`, `pending`),
    /// if any.
    pub client_saw: Option<String>,
    /// The coordinator's status for it at the end, `None` when it does not know the order.
    pub final_status: Option<String>,
    /// How long it was half-done: from its first step applied to its end, in ms.
    #[serde(default)]
    pub half_done_ms: Option<u64>,
    /// What the coordinator reports of it at the end (steps done, the step declined and why).
    #[serde(default)]
    pub coordinator: Value,
}

/// What a service did for one order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// Times its step was applied.
    pub applied: u32,
    /// Times it was undone by a compensation.
    pub undone: u32,
}

/// A service's final state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Its totals: stock per SKU (inventory), balance per account (payment), `shipments`
    /// (shipping).
    pub totals: BTreeMap<String, i64>,
    /// Per order.
    pub orders: BTreeMap<String, Effect>,
    /// Two-phase commit participants: how long each decided order held its locks, in ms.
    #[serde(default)]
    pub blocked_ms: Vec<u64>,
}

/// Everything the saga checker judges.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SagaFacts {
    /// Stock per SKU before the run.
    pub initial_stock: BTreeMap<String, i64>,
    /// Balance per account before the run.
    pub initial_balances: BTreeMap<String, i64>,
    /// Every order placed.
    pub orders: Vec<OrderFacts>,
    /// Each service's final state by name; a missing one makes the verdict UNKNOWN.
    pub services: BTreeMap<String, ServiceState>,
}

/// One broken promise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// The order (or the total) it concerns.
    pub order: String,
    /// `stuck`, `half-done`, `applied-twice`, `lost-completion`, `lost-order`, `forgotten`,
    /// `not-conserved`.
    pub kind: &'static str,
    /// What is wrong, for a person.
    pub detail: String,
    /// The evidence: each service's entry for the order, or the totals.
    pub evidence: Value,
}

/// What the saga checker found.
#[derive(Clone, Debug, Serialize)]
pub struct SagaReport {
    /// PASS, FAIL or UNKNOWN.
    pub validity: Validity,
    /// Orders placed.
    pub orders: usize,
    /// Orders by final status.
    pub by_status: BTreeMap<String, usize>,
    /// Everything wrong.
    pub violations: Vec<Violation>,
    /// Why the verdict is UNKNOWN, if it is.
    pub unknown: Option<String>,
    /// How long orders were half-done (visible partial state): count, p50, p99, max in ms.
    pub half_done_ms: Option<Value>,
    /// How long participants held an order's locks waiting for the decision (two-phase
    /// commit): count, p50, p99, max in ms.
    pub blocked_ms: Option<Value>,
}

impl SagaReport {
    /// The common shape of a verdict.
    pub fn verdict(&self) -> crate::verdict::Verdict {
        crate::verdict::Verdict {
            valid: self.validity,
            checker: "saga".into(),
            summary: self.summary(),
            explanation: self.explanation(),
            details: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }

    /// One line for a person.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.unknown {
            return format!("cannot judge: {why}");
        }
        let statuses: Vec<String> = self
            .by_status
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let mut window = self.half_done_ms.as_ref().map_or(String::new(), |w| {
            format!(
                "; half-done p50 {} ms, p99 {} ms, max {} ms",
                w["p50"], w["p99"], w["max"]
            )
        });
        if let Some(b) = &self.blocked_ms {
            window.push_str(&format!(
                "; participants blocked p50 {} ms, p99 {} ms, max {} ms",
                b["p50"], b["p99"], b["max"]
            ));
        }
        if self.violations.is_empty() {
            format!(
                "{} orders, each all-done or all-undone ({}); stock and money conserved{window}",
                self.orders,
                statuses.join(", ")
            )
        } else {
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for v in &self.violations {
                *kinds.entry(v.kind).or_default() += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!("{} orders: {}", self.orders, kinds.join(", "))
        }
    }

    /// The violations, a few lines each, for the terminal.
    fn explanation(&self) -> String {
        let mut text = String::new();
        for v in self.violations.iter().take(20) {
            text.push_str(&format!(
                "  {} {}: {}\n    {}\n",
                v.kind, v.order, v.detail, v.evidence
            ));
        }
        if self.violations.len() > 20 {
            text.push_str(&format!("  ... and {} more\n", self.violations.len() - 20));
        }
        text
    }
}

/// The change a service's step makes to its totals: (total, delta) per application.
fn step_delta(service: &str, order: &OrderFacts) -> (String, i64) {
    match service {
        "inventory" => (order.sku.clone(), -order.qty),
        "payment" => (order.account.clone(), -order.amount),
        _ => ("shipments".to_string(), 1),
    }
}

/// Count, p50, p99 and max of some durations, if there are any.
fn spread(mut ms: Vec<u64>) -> Option<Value> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_unstable();
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Some(json!({"count": ms.len(), "p50": at(0.5), "p99": at(0.99), "max": ms[ms.len() - 1]}))
}

/// Checks the facts of a checkout run.
pub fn check(facts: &SagaFacts) -> SagaReport {
    let mut report = SagaReport {
        validity: Validity::Pass,
        orders: facts.orders.len(),
        by_status: BTreeMap::new(),
        violations: Vec::new(),
        unknown: None,
        half_done_ms: None,
        blocked_ms: None,
    };
    report.half_done_ms = spread(facts.orders.iter().filter_map(|o| o.half_done_ms).collect());
    report.blocked_ms = spread(
        facts
            .services
            .values()
            .flat_map(|s| s.blocked_ms.iter().copied())
            .collect(),
    );
    let missing: Vec<&str> = SERVICES
        .iter()
        .copied()
        .filter(|s| !facts.services.contains_key(*s))
        .collect();
    if !missing.is_empty() {
        report.validity = Validity::Unknown;
        report.unknown = Some(format!("no final state from {}", missing.join(", ")));
        return report;
    }
    let state = |s: &str| &facts.services[s];
    let entries = |order: &str| -> Value {
        SERVICES
            .iter()
            .map(|s| {
                let e = state(s).orders.get(order).copied().unwrap_or_default();
                (
                    s.to_string(),
                    json!({"applied": e.applied, "undone": e.undone}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mut expected: BTreeMap<(&str, String), i64> = BTreeMap::new();
    for (sku, n) in &facts.initial_stock {
        expected.insert(("inventory", sku.clone()), *n);
    }
    for (account, n) in &facts.initial_balances {
        expected.insert(("payment", account.clone()), *n);
    }
    expected.insert(("shipping", "shipments".into()), 0);
    let mut known = std::collections::BTreeSet::new();
    for order in &facts.orders {
        known.insert(order.order.as_str());
        let status = order.final_status.as_deref().unwrap_or("not-received");
        *report.by_status.entry(status.to_string()).or_default() += 1;
        let mut fail = |kind: &'static str, detail: String| {
            let mut evidence = entries(&order.order);
            if !order.coordinator.is_null() {
                evidence["coordinator"] = order.coordinator.clone();
            }
            report.violations.push(Violation {
                order: order.order.clone(),
                kind,
                detail,
                evidence,
            });
        };
        for service in SERVICES {
            let e = state(service)
                .orders
                .get(&order.order)
                .copied()
                .unwrap_or_default();
            if e.applied > 1 {
                let what = if service == "payment" {
                    format!("charged {} times for one order", e.applied)
                } else {
                    format!("{service} applied its step {} times", e.applied)
                };
                fail("applied-twice", what);
            }
            let net = i64::from(e.applied) - i64::from(e.undone);
            let (total, delta) = step_delta(service, order);
            *expected.entry((service, total)).or_default() += net * delta;
        }
        let net = |s: &str| {
            let e = state(s)
                .orders
                .get(&order.order)
                .copied()
                .unwrap_or_default();
            i64::from(e.applied) - i64::from(e.undone)
        };
        match status {
            "completed" => {
                let short: Vec<&str> = SERVICES.iter().copied().filter(|s| net(s) < 1).collect();
                if !short.is_empty() {
                    fail(
                        "half-done",
                        format!("completed, but {} did not apply its step", short.join(", ")),
                    );
                }
            }
            "compensated" | "rejected" => {
                let left: Vec<&str> = SERVICES.iter().copied().filter(|s| net(s) != 0).collect();
                if !left.is_empty() {
                    fail(
                        "half-done",
                        format!("{status}, but {} still hold its effect", left.join(", ")),
                    );
                }
            }
            "not-received" => {
                let left: Vec<&str> = SERVICES.iter().copied().filter(|s| net(s) != 0).collect();
                if !left.is_empty() {
                    fail(
                        "forgotten",
                        format!(
                            "the coordinator does not know this order, yet {} hold its effect",
                            left.join(", ")
                        ),
                    );
                } else if let Some(saw) = &order.client_saw {
                    fail(
                        "lost-order",
                        format!("a client was told {saw}; the coordinator does not know the order"),
                    );
                }
            }
            other => fail("stuck", format!("still {other} after the quiet period")),
        }
        if order.client_saw.as_deref() == Some("completed")
            && !matches!(status, "completed" | "not-received")
        {
            fail(
                "lost-completion",
                format!("a client was told completed; the order ended {status}"),
            );
        }
    }
    // Effects of orders nobody placed (or that a forgetful log lost track of entirely).
    for service in SERVICES {
        for (order, e) in &state(service).orders {
            if !known.contains(order.as_str()) && e.applied > e.undone {
                report.violations.push(Violation {
                    order: order.clone(),
                    kind: "forgotten",
                    detail: format!("{service} holds the effect of an order no client placed"),
                    evidence: entries(order),
                });
            }
        }
    }
    for ((service, total), want) in &expected {
        let found = state(service).totals.get(total).copied().unwrap_or(0);
        if found != *want {
            report.violations.push(Violation {
                order: format!("{service}:{total}"),
                kind: "not-conserved",
                detail: format!(
                    "{service} holds {found} of {total}; the initial amount and the orders' \
                     effects give {want}"
                ),
                evidence: json!({"expected": want, "found": found}),
            });
        }
    }
    if !report.violations.is_empty() {
        report.validity = Validity::Fail;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, status: &str, saw: Option<&str>) -> OrderFacts {
        OrderFacts {
            order: id.into(),
            sku: "apple".into(),
            qty: 2,
            account: "alice".into(),
            amount: 30,
            client_saw: saw.map(str::to_string),
            final_status: Some(status.into()),
            half_done_ms: Some(5),
            coordinator: Value::Null,
        }
    }

    /// A consistent world: o1 completed, o2 compensated after its payment failed, o3 rejected
    /// for lack of stock.
    fn consistent() -> SagaFacts {
        let done = Effect {
            applied: 1,
            undone: 0,
        };
        let undone = Effect {
            applied: 1,
            undone: 1,
        };
        let mut facts = SagaFacts {
            initial_stock: BTreeMap::from([("apple".into(), 10)]),
            initial_balances: BTreeMap::from([("alice".into(), 100)]),
            orders: vec![
                order("o1", "completed", Some("completed")),
                order("o2", "compensated", None),
                order("o3", "rejected", Some("rejected")),
            ],
            services: BTreeMap::new(),
        };
        facts.services.insert(
            "inventory".into(),
            ServiceState {
                totals: BTreeMap::from([("apple".into(), 8)]),
                orders: BTreeMap::from([("o1".into(), done), ("o2".into(), undone)]),
                blocked_ms: Vec::new(),
            },
        );
        facts.services.insert(
            "payment".into(),
            ServiceState {
                totals: BTreeMap::from([("alice".into(), 70)]),
                orders: BTreeMap::from([("o1".into(), done)]),
                blocked_ms: Vec::new(),
            },
        );
        facts.services.insert(
            "shipping".into(),
            ServiceState {
                totals: BTreeMap::from([("shipments".into(), 1)]),
                orders: BTreeMap::from([("o1".into(), done)]),
                blocked_ms: vec![3, 40],
            },
        );
        facts
    }

    fn kinds(report: &SagaReport) -> Vec<&'static str> {
        report.violations.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn a_consistent_checkout_passes() {
        let report = check(&consistent());
        assert_eq!(report.validity, Validity::Pass, "{:?}", report.violations);
        assert_eq!(report.by_status["completed"], 1);
        assert!(report.summary().contains("conserved"));
        assert!(
            report.summary().contains("blocked p50 40 ms"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn a_double_charge_is_named_with_its_evidence() {
        let mut facts = consistent();
        let payment = facts.services.get_mut("payment").unwrap();
        payment.orders.get_mut("o1").unwrap().applied = 2;
        payment.totals.insert("alice".into(), 40);
        let report = check(&facts);
        assert_eq!(report.validity, Validity::Fail);
        let twice = &report.violations[0];
        assert_eq!((twice.order.as_str(), twice.kind), ("o1", "applied-twice"));
        assert!(twice.detail.contains("charged 2 times"));
        assert_eq!(twice.evidence["payment"]["applied"], 2);
        // The totals agree with the effects, so money is "conserved" against them: the double
        // charge is the violation, not the arithmetic.
        assert_eq!(kinds(&report), vec!["applied-twice"]);
    }

    #[test]
    fn a_missing_compensation_leaves_a_half_done_order() {
        let mut facts = consistent();
        let inventory = facts.services.get_mut("inventory").unwrap();
        inventory.orders.get_mut("o2").unwrap().undone = 0;
        inventory.totals.insert("apple".into(), 6);
        let report = check(&facts);
        assert_eq!(kinds(&report), vec!["half-done"]);
        assert!(report.violations[0].detail.contains("inventory still hold"));
    }

    #[test]
    fn stuck_forgotten_and_lost_orders_fail() {
        let mut facts = consistent();
        facts.orders[1].final_status = Some("pending".into());
        let report = check(&facts);
        assert_eq!(kinds(&report), vec!["stuck"]);

        let mut facts = consistent();
        // The coordinator forgot o1, which services applied.
        facts.orders[0].final_status = None;
        let report = check(&facts);
        assert!(kinds(&report).contains(&"forgotten"));

        let mut facts = consistent();
        facts.orders[2].client_saw = Some("completed".into());
        let report = check(&facts);
        assert_eq!(kinds(&report), vec!["lost-completion"]);

        // Accepted as pending, then forgotten with nothing applied.
        let mut facts = consistent();
        facts.orders[2].client_saw = Some("pending".into());
        facts.orders[2].final_status = None;
        let report = check(&facts);
        assert_eq!(kinds(&report), vec!["lost-order"]);
    }

    #[test]
    fn totals_that_do_not_add_up_are_not_conserved() {
        let mut facts = consistent();
        facts
            .services
            .get_mut("inventory")
            .unwrap()
            .totals
            .insert("apple".into(), 9);
        let report = check(&facts);
        assert_eq!(kinds(&report), vec!["not-conserved"]);
        assert_eq!(report.violations[0].order, "inventory:apple");
    }

    #[test]
    fn a_missing_service_state_is_unknown() {
        let mut facts = consistent();
        facts.services.remove("shipping");
        let report = check(&facts);
        assert_eq!(report.validity, Validity::Unknown);
        assert!(report.summary().contains("shipping"));
    }
}
