//! Consistency models and the anomalies each forbids, as one table (after Elle's
//! `consistency-model`, from Adya; Adya, Liskov & O'Neil; Bailis et al.; Cerone, Bernardi &
//! Gotsman; Daudjee & Salem), and what anomalies imply others.
//!
//! A model forbids its own anomalies and every anomaly a weaker model forbids. A history is
//! *not* a model when some anomaly it shows — or one that anomaly implies (G0 is also a G1c; a
//! G1c is also a G1c-process, since processes are single-threaded) — is forbidden by it.

use serde::Serialize;

/// A transactional consistency model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// Every committed transaction in one total order that respects real time.
    StrictSerializable,
    /// Serializable, and a process sees its own earlier transactions.
    StrongSessionSerializable,
    /// (Conflict) serializable: no cycle of ww, wr and rw dependencies.
    Serializable,
    /// Snapshot isolation whose snapshots respect real time.
    StrongSnapshotIsolation,
    /// Snapshot isolation in which a process sees its own earlier transactions.
    StrongSessionSnapshotIsolation,
    /// Snapshot isolation (generalized, as in Adya's PL-SI).
    SnapshotIsolation,
    /// Adya's PL-2.99: no G1, no G2-item.
    RepeatableRead,
    /// Adya's PL-3U.
    UpdateSerializable,
    /// Adya's PL-2+.
    ConsistentView,
    /// Parallel snapshot isolation (Cerone et al.).
    ParallelSnapshotIsolation,
    /// Prefix consistency (Cerone et al.).
    Prefix,
    /// Causal consistency with atomic visibility (Cerone et al.).
    CausalCerone,
    /// Read atomic (Cerone et al.).
    ReadAtomic,
    /// Monotonic atomic view (Bailis et al.).
    MonotonicAtomicView,
    /// Read committed (Adya's PL-2): no G1.
    ReadCommitted,
    /// Read uncommitted (Adya's PL-1): no G0.
    ReadUncommitted,
}

/// One row of the table: a model, the models it implies, what it forbids itself.
struct Row {
    model: Model,
    name: &'static str,
    weaker: &'static [Model],
    forbids: &'static [&'static str],
}

use Model::*;

/// Every model, strongest first.
const TABLE: &[Row] = &[
    Row {
        model: StrictSerializable,
        name: "strict-serializable",
        weaker: &[
            StrongSessionSerializable,
            StrongSnapshotIsolation,
            Serializable,
        ],
        forbids: &["G1c-realtime", "G2-realtime", "cycle-realtime"],
    },
    Row {
        model: StrongSessionSerializable,
        name: "strong-session-serializable",
        weaker: &[Serializable, StrongSessionSnapshotIsolation],
        forbids: &["G1-process", "G2-process", "cycle-process"],
    },
    Row {
        model: Serializable,
        name: "serializable",
        weaker: &[RepeatableRead, UpdateSerializable, SnapshotIsolation],
        forbids: &["internal", "G1", "G2", "cycle"],
    },
    Row {
        model: StrongSnapshotIsolation,
        name: "strong-snapshot-isolation",
        weaker: &[StrongSessionSnapshotIsolation],
        forbids: &["G1-realtime", "G-nonadjacent-realtime"],
    },
    Row {
        model: StrongSessionSnapshotIsolation,
        name: "strong-session-snapshot-isolation",
        weaker: &[SnapshotIsolation],
        forbids: &["G1-process", "G-nonadjacent-process"],
    },
    Row {
        model: SnapshotIsolation,
        name: "snapshot-isolation",
        weaker: &[
            ConsistentView,
            MonotonicAtomicView,
            ParallelSnapshotIsolation,
            Prefix,
        ],
        forbids: &["internal", "G1", "G-nonadjacent"],
    },
    Row {
        model: RepeatableRead,
        name: "repeatable-read",
        weaker: &[MonotonicAtomicView],
        forbids: &["G1", "G2-item", "lost-update"],
    },
    Row {
        model: UpdateSerializable,
        name: "update-serializable",
        weaker: &[ConsistentView],
        forbids: &["G1"],
    },
    Row {
        model: ConsistentView,
        name: "consistent-view",
        weaker: &[ReadCommitted],
        forbids: &["G1", "G-single", "lost-update"],
    },
    Row {
        model: ParallelSnapshotIsolation,
        name: "parallel-snapshot-isolation",
        weaker: &[CausalCerone],
        forbids: &["internal", "G1a", "lost-update"],
    },
    Row {
        model: Prefix,
        name: "prefix",
        weaker: &[CausalCerone],
        forbids: &["internal", "G1a"],
    },
    Row {
        model: CausalCerone,
        name: "causal-cerone",
        weaker: &[ReadAtomic],
        forbids: &["internal", "G1a"],
    },
    Row {
        model: ReadAtomic,
        name: "read-atomic",
        weaker: &[MonotonicAtomicView],
        forbids: &["internal", "G1a", "future-read"],
    },
    Row {
        model: MonotonicAtomicView,
        name: "monotonic-atomic-view",
        weaker: &[ReadCommitted],
        forbids: &[],
    },
    Row {
        model: ReadCommitted,
        name: "read-committed",
        weaker: &[ReadUncommitted],
        forbids: &["G1"],
    },
    Row {
        model: ReadUncommitted,
        name: "read-uncommitted",
        weaker: &[],
        forbids: &["G0", "duplicate-elements", "garbage-read"],
    },
];

/// What each anomaly implies (the transitive closure is taken in code).
const IMPLIES: &[(&str, &[&str])] = &[
    ("G0", &["G1c", "G0-process"]),
    ("G0-process", &["G1c-process", "G0-realtime"]),
    ("G0-realtime", &["G1c-realtime"]),
    ("G1a", &["G1"]),
    ("G1b", &["G1"]),
    ("G1c", &["G1", "G1c-process"]),
    ("G1c-process", &["G1c-realtime", "G1-process"]),
    ("G1c-realtime", &["G1-realtime"]),
    ("G1", &["G1-process"]),
    ("G1-process", &["G1-realtime"]),
    // Every cycle we find is over items (keys), so a G-single is also a G2-item.
    (
        "G-single",
        &["G-nonadjacent", "G2-item", "G-single-process"],
    ),
    (
        "G-single-process",
        &[
            "G-nonadjacent-process",
            "G2-item-process",
            "G-single-realtime",
        ],
    ),
    (
        "G-single-realtime",
        &["G-nonadjacent-realtime", "G2-item-realtime"],
    ),
    ("G-nonadjacent", &["G2", "G2-item", "G-nonadjacent-process"]),
    (
        "G-nonadjacent-process",
        &["G2-process", "G2-item-process", "G-nonadjacent-realtime"],
    ),
    (
        "G-nonadjacent-realtime",
        &["G2-realtime", "G2-item-realtime"],
    ),
    ("G2-item", &["G2", "G2-item-process"]),
    ("G2-item-process", &["G2-process", "G2-item-realtime"]),
    ("G2-item-realtime", &["G2-realtime"]),
    ("G2", &["G2-process"]),
    ("G2-process", &["G2-realtime"]),
    ("incompatible-order", &["G1a"]),
    ("dirty-update", &["G1a"]),
    ("future-read", &["G1c"]),
    ("lost-update", &["G2-item"]),
    ("cycle", &["cycle-process"]),
    ("cycle-process", &["cycle-realtime"]),
];

/// Every model, strongest first.
pub const ALL_MODELS: [Model; 16] = [
    StrictSerializable,
    StrongSessionSerializable,
    Serializable,
    StrongSnapshotIsolation,
    StrongSessionSnapshotIsolation,
    SnapshotIsolation,
    RepeatableRead,
    UpdateSerializable,
    ConsistentView,
    ParallelSnapshotIsolation,
    Prefix,
    CausalCerone,
    ReadAtomic,
    MonotonicAtomicView,
    ReadCommitted,
    ReadUncommitted,
];

fn row(model: Model) -> &'static Row {
    TABLE
        .iter()
        .find(|r| r.model == model)
        .expect("every model has a row")
}

impl Model {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        row(self).name
    }

    /// Every anomaly it forbids, its own and its weaker models'.
    pub fn forbidden(self) -> Vec<&'static str> {
        let mut found: Vec<&'static str> = Vec::new();
        let mut todo = vec![self];
        let mut seen = Vec::new();
        while let Some(m) = todo.pop() {
            if seen.contains(&m) {
                continue;
            }
            seen.push(m);
            let r = row(m);
            for a in r.forbids {
                if !found.contains(a) {
                    found.push(a);
                }
            }
            todo.extend(r.weaker);
        }
        found
    }

    /// Whether a history showing `anomalies` can still be this model.
    pub fn allows(self, anomalies: &[&str]) -> bool {
        let forbidden = self.forbidden();
        !implied(anomalies).iter().any(|a| forbidden.contains(a))
    }
}

impl std::str::FromStr for Model {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TABLE
            .iter()
            .find(|r| r.name == s)
            .map(|r| r.model)
            .ok_or_else(|| {
                let names: Vec<&str> = TABLE.iter().map(|r| r.name).collect();
                format!(
                    "unknown consistency model `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `anomalies` and every anomaly they imply.
pub(crate) fn implied(anomalies: &[&str]) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = Vec::new();
    let mut todo: Vec<&str> = anomalies.to_vec();
    while let Some(a) = todo.pop() {
        let Some(name) = canonical(a) else {
            continue;
        };
        if found.contains(&name) {
            continue;
        }
        found.push(name);
        if let Some((_, next)) = IMPLIES.iter().find(|(k, _)| *k == name) {
            todo.extend(next.iter().copied());
        }
    }
    found
}

/// The static name of an anomaly, if it is one the tables know.
fn canonical(a: &str) -> Option<&'static str> {
    const OTHERS: &[&str] = &[
        "G1a",
        "G1b",
        "internal",
        "garbage-read",
        "duplicate-elements",
    ];
    IMPLIES
        .iter()
        .flat_map(|(k, v)| std::iter::once(k).chain(v.iter()))
        .chain(TABLE.iter().flat_map(|r| r.forbids.iter()))
        .chain(OTHERS.iter())
        .copied()
        .find(|k| *k == a)
}

/// The models a history showing `anomalies` is not, strongest first.
pub(crate) fn ruled_out(anomalies: &[&str]) -> Vec<Model> {
    ALL_MODELS
        .into_iter()
        .filter(|m| !m.allows(anomalies))
        .collect()
}

/// The strongest models a history showing `anomalies` may still be: those not ruled out
/// whose every stronger model is.
pub(crate) fn strongest_possible(anomalies: &[&str]) -> Vec<Model> {
    let out = ruled_out(anomalies);
    ALL_MODELS
        .into_iter()
        .filter(|m| !out.contains(m))
        .filter(|m| {
            ALL_MODELS
                .iter()
                .filter(|s| row(**s).weaker.contains(m))
                .all(|s| out.contains(s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stronger_models_forbid_everything_weaker_ones_do() {
        for r in TABLE {
            for weaker in r.weaker {
                for a in weaker.forbidden() {
                    assert!(
                        r.model.forbidden().contains(&a),
                        "{} allows {a}, which {} forbids",
                        r.name,
                        weaker.name()
                    );
                }
            }
        }
    }

    #[test]
    fn anomalies_rule_out_the_models_that_forbid_them() {
        assert_eq!(ruled_out(&[]), Vec::<Model>::new());
        let g2 = ruled_out(&["G2-item"]);
        assert!(g2.contains(&Serializable) && g2.contains(&RepeatableRead));
        assert!(!g2.contains(&SnapshotIsolation), "SI allows write skew");
        let g0 = ruled_out(&["G0"]);
        assert_eq!(g0.len(), ALL_MODELS.len(), "G0 breaks every model");
        let single = ruled_out(&["G-single"]);
        assert!(single.contains(&SnapshotIsolation) && single.contains(&ConsistentView));
        assert!(!single.contains(&ReadCommitted));
        assert_eq!(
            strongest_possible(&["G-single"]),
            [ParallelSnapshotIsolation, Prefix]
        );
        let realtime = ruled_out(&["G2-item-realtime"]);
        assert_eq!(realtime, [StrictSerializable]);
        assert!(ruled_out(&["G1c-process"]).contains(&StrongSessionSerializable));
        assert!(!ruled_out(&["G1c-process"]).contains(&Serializable));
    }
}
