//! The fault schedule: from the run's seed, which fault to start when, on which nodes, and
//! when to heal it. One fault at a time: a wait, a fault, a hold, a heal, and again; holds are
//! uniform in [0, 2 × interval), and so are waits unless a gap is given (waits in [0, gap);
//! none with a zero gap). Equal seeds give equal schedules.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use faultline_targets::runtime::{CrashPlan, CrashPoint, PlannedCrash};

use crate::fault::{ClockMode, Fault, Kind, NodeId, Shape, group_cuts, visibility_cuts};

/// One step of a schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// How long to wait before starting the fault.
    pub wait: Duration,
    /// The fault.
    pub fault: Fault,
    /// How long to keep it before healing.
    pub hold: Duration,
}

/// One fault of a schedule file: when it starts (from the start of the run), how long it is
/// held, and what it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedStep {
    /// When the fault starts, in milliseconds from the start of the workload.
    pub at_ms: u64,
    /// How long it is held before it is healed, in milliseconds.
    pub hold_ms: u64,
    /// The fault.
    pub fault: Fault,
}

/// A fault schedule as a file (`--schedule`): the faults of a run, each at its time, replayed
/// as written instead of the ones the seed would draw. `faultline hunt` writes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    /// The format's version: 1.
    pub faultline_schedule: u32,
    /// The faults, by start time.
    pub steps: Vec<PlannedStep>,
}

impl ScheduleFile {
    /// A file of `steps` (sorted by their start).
    pub fn new(mut steps: Vec<PlannedStep>) -> Self {
        steps.sort_by_key(|s| s.at_ms);
        ScheduleFile {
            faultline_schedule: 1,
            steps,
        }
    }

    /// Reads and checks a schedule file for a cluster of `nodes`; errors name the file.
    pub fn read(path: &std::path::Path, nodes: usize) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--schedule {}: cannot read: {e}", path.display()))?;
        let file: ScheduleFile = serde_json::from_str(&text).map_err(|e| {
            format!(
                "--schedule {}: line {} column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        if file.faultline_schedule != 1 {
            return Err(format!(
                "--schedule {}: format version {} is not one this faultline reads (1)",
                path.display(),
                file.faultline_schedule
            ));
        }
        for (i, step) in file.steps.iter().enumerate() {
            if let Some(node) = step
                .fault
                .nodes()
                .into_iter()
                .find(|&n| n as usize >= nodes)
            {
                return Err(format!(
                    "--schedule {}: step {} names node index {node}, but the cluster has {nodes} \
                     nodes (indices 0 to {})",
                    path.display(),
                    i + 1,
                    nodes.saturating_sub(1)
                ));
            }
        }
        Ok(ScheduleFile::new(file.steps))
    }

    /// The steps as the nemesis runs them: each wait counted from the previous heal.
    fn steps(&self) -> Vec<Step> {
        let mut free_at = 0;
        self.steps
            .iter()
            .map(|planned| {
                let wait = planned.at_ms.saturating_sub(free_at);
                free_at = free_at.max(planned.at_ms) + planned.hold_ms;
                Step {
                    wait: Duration::from_millis(wait),
                    fault: planned.fault.clone(),
                    hold: Duration::from_millis(planned.hold_ms),
                }
            })
            .collect()
    }
}

/// A seeded generator of steps.
#[derive(Debug)]
pub struct Schedule {
    rng: ChaCha8Rng,
    kinds: Vec<Kind>,
    shapes: Vec<Shape>,
    crash_plans: Vec<CrashPlan>,
    /// The longest a crash keeps a node down.
    max_crash_down: Duration,
    /// Whether a crash fault arms every node (else a random number of them).
    crash_every_node: bool,
    interval: Duration,
    /// Waits between faults are drawn below this (2 × interval unless set).
    max_wait: Duration,
    nodes: usize,
    /// The largest clock offset a clock fault sets, in milliseconds.
    max_skew_ms: i64,
    /// Steps given in advance (a schedule file), replayed instead of drawn.
    replay: Option<VecDeque<Step>>,
}

impl Schedule {
    /// A schedule of `kinds` (non-empty) over `nodes` nodes; partitions take `shapes`
    /// (every shape but `leader` when empty).
    pub fn new(
        kinds: Vec<Kind>,
        shapes: Vec<Shape>,
        interval: Duration,
        nodes: usize,
        seed: u64,
    ) -> Self {
        Schedule {
            // Its own stream, so the workload's choices and the nemesis's do not interleave.
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321),
            kinds,
            shapes: if shapes.is_empty() {
                Shape::LEADERLESS.to_vec()
            } else {
                shapes
            },
            crash_plans: vec![
                CrashPlan(vec![PlannedCrash::at(CrashPoint::Persist(Vec::new()))]),
                CrashPlan(vec![PlannedCrash::at(CrashPoint::Send(Vec::new()))]),
            ],
            max_crash_down: Duration::from_secs(1),
            crash_every_node: false,
            interval,
            max_wait: 2 * interval,
            nodes: nodes.max(1),
            max_skew_ms: 30_000,
            replay: None,
        }
    }

    /// A schedule that replays `file`'s steps, then starts no more faults.
    pub fn replaying(file: &ScheduleFile) -> Self {
        let mut schedule = Schedule::new(vec![Kind::Partition], Vec::new(), Duration::ZERO, 1, 0);
        schedule.replay = Some(file.steps().into());
        schedule
    }

    /// The next step, or `None` when a replayed schedule has no more.
    pub fn upcoming(&mut self) -> Option<Step> {
        match &mut self.replay {
            Some(steps) => steps.pop_front(),
            None => Some(self.next_step()),
        }
    }

    /// The steps that start within `limit` of the start, each at its time.
    pub fn planned(&mut self, limit: Duration) -> ScheduleFile {
        let mut at = Duration::ZERO;
        let mut planned = Vec::new();
        while let Some(step) = self.upcoming() {
            at += step.wait;
            if at >= limit {
                break;
            }
            planned.push(PlannedStep {
                at_ms: at.as_millis() as u64,
                hold_ms: step.hold.as_millis() as u64,
                fault: step.fault,
            });
            at += step.hold;
        }
        ScheduleFile::new(planned)
    }

    /// Each crash fault arms one of `plans` (persist, or send, when empty) and keeps a
    /// crashed node down for up to `max_down` (at least 1 ms).
    pub fn with_crash_plans(mut self, plans: Vec<CrashPlan>, max_down: Duration) -> Self {
        if !plans.is_empty() {
            self.crash_plans = plans;
        }
        self.max_crash_down = max_down.max(Duration::from_millis(1));
        self
    }

    /// Crash faults arm every node, not a random number of them.
    pub fn crashing_every_node(mut self) -> Self {
        self.crash_every_node = true;
        self
    }

    /// Waits between a heal and the next fault are drawn in [0, `gap`); a zero gap puts
    /// faults back to back.
    pub fn with_gap(mut self, gap: Duration) -> Self {
        self.max_wait = gap;
        self
    }

    /// A random duration in [0, `max`) (zero for a zero `max`).
    fn below(&mut self, max: Duration) -> Duration {
        match max.as_millis() as u64 {
            0 => Duration::ZERO,
            max => Duration::from_millis(self.rng.random_range(0..max)),
        }
    }

    fn shuffled(&mut self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = (0..self.nodes as NodeId).collect();
        nodes.shuffle(&mut self.rng);
        nodes
    }

    /// `k` random distinct nodes, sorted.
    fn pick(&mut self, k: usize) -> Vec<NodeId> {
        let mut chosen: Vec<NodeId> = self.shuffled().into_iter().take(k.max(1)).collect();
        chosen.sort_unstable();
        chosen
    }

    fn minority(&self) -> usize {
        ((self.nodes - 1) / 2).max(1)
    }

    /// The next step.
    pub fn next_step(&mut self) -> Step {
        let wait = self.below(self.max_wait);
        let kind = self.kinds[self.rng.random_range(0..self.kinds.len())];
        let fault = self.decide(kind);
        let hold = self.below(2 * self.interval);
        Step { wait, fault, hold }
    }

    fn decide(&mut self, kind: Kind) -> Fault {
        let n = self.nodes;
        match kind {
            Kind::Partition => {
                let shape = self.shapes[self.rng.random_range(0..self.shapes.len())];
                self.partition(shape)
            }
            Kind::Clock => {
                let count = self.rng.random_range(1..=n);
                let nodes = self.pick(count);
                let offsets = nodes
                    .into_iter()
                    .map(|node| {
                        let size = self.rng.random_range(100..=self.max_skew_ms);
                        let sign = if self.rng.random_bool(0.5) { 1 } else { -1 };
                        (node, sign * size)
                    })
                    .collect();
                let mode = if self.rng.random_bool(0.25) {
                    ClockMode::Strobe {
                        period_ms: self.rng.random_range(20..=200),
                    }
                } else {
                    ClockMode::Bump
                };
                Fault::Clock { mode, offsets }
            }
            Kind::Kill => {
                let count = self.rng.random_range(1..=self.minority());
                Fault::Kill {
                    nodes: self.pick(count),
                }
            }
            Kind::Pause => {
                let count = self.rng.random_range(1..=self.minority());
                Fault::Pause {
                    nodes: self.pick(count),
                }
            }
            Kind::Crash => {
                // Crashed nodes come back by themselves: any number may be armed.
                let count = if self.crash_every_node {
                    n
                } else {
                    self.rng.random_range(1..=n)
                };
                let nodes = self.pick(count);
                let plan =
                    self.crash_plans[self.rng.random_range(0..self.crash_plans.len())].clone();
                let chance = f64::from(self.rng.random_range(2..=10u32)) / 10.0;
                let max_down = self.max_crash_down.as_millis() as u64;
                let down_ms = self.rng.random_range(1..=max_down);
                Fault::Crash {
                    nodes,
                    rules: plan.rules(chance),
                    down_ms,
                }
            }
            Kind::Packet => {
                let count = self.rng.random_range(1..=n);
                Fault::Packet {
                    nodes: self.pick(count),
                    delay_ms: self.rng.random_range(0..=100),
                    jitter_ms: self.rng.random_range(0..=100),
                    loss: f64::from(self.rng.random_range(0..=30u32)) / 100.0,
                    duplicate: f64::from(self.rng.random_range(0..=20u32)) / 100.0,
                }
            }
        }
    }

    /// Decides the groups (and cuts) of a partition of `shape`.
    pub fn partition(&mut self, shape: Shape) -> Fault {
        let n = self.nodes;
        let (groups, cuts, one_way) = match shape {
            Shape::Halves
            | Shape::RandomHalves
            | Shape::One
            | Shape::Minority
            | Shape::Majority => {
                let groups = self.split(shape);
                let one_way = self.rng.random_bool(0.25);
                let cuts = group_cuts(&groups, one_way);
                (groups, cuts, one_way)
            }
            Shape::MajoritiesRing => {
                let sees = self.majorities_ring();
                let cuts = visibility_cuts(&sees);
                (sees, cuts, false)
            }
            // The backend finds the leader when it applies the fault.
            Shape::Leader => (Vec::new(), Vec::new(), false),
            Shape::Bridge => {
                let nodes = self.shuffled();
                let bridge = nodes[0];
                let rest = nodes[1..].to_vec();
                let half = rest.len() / 2;
                let mut groups = split(rest, half);
                let mut sees = vec![Vec::new(); n];
                for group in &groups {
                    for &a in group {
                        sees[a as usize] = group.clone();
                        sees[a as usize].push(bridge);
                    }
                }
                sees[bridge as usize] = (0..n as NodeId).collect();
                groups.push(vec![bridge]);
                (groups, visibility_cuts(&sees), false)
            }
        };
        Fault::Partition {
            shape,
            one_way,
            groups,
            cuts,
        }
    }

    /// The two groups of a plain split of `shape` (halves, random halves, one, minority,
    /// majority).
    fn split(&mut self, shape: Shape) -> Vec<Vec<NodeId>> {
        let n = self.nodes;
        match shape {
            Shape::Halves => split((0..n as NodeId).collect(), n / 2),
            Shape::RandomHalves => split(self.shuffled(), n / 2),
            Shape::One => split(self.shuffled(), 1),
            Shape::Minority => {
                let nodes = self.shuffled();
                split(nodes, self.minority())
            }
            _ => split(self.shuffled(), n / 2 + 1),
        }
    }

    /// What each node sees in a majorities ring: itself and its neighbours on a random ring,
    /// a majority each, no two the same.
    fn majorities_ring(&mut self) -> Vec<Vec<NodeId>> {
        let n = self.nodes;
        let ring = self.shuffled();
        let reach = (n / 2 + 1).saturating_sub(1).div_ceil(2);
        let mut sees = vec![Vec::new(); n];
        for (p, &node) in ring.iter().enumerate() {
            let sees = &mut sees[node as usize];
            for d in 0..=reach {
                sees.push(ring[(p + d) % n]);
                sees.push(ring[(p + n - d % n) % n]);
            }
            sees.sort_unstable();
            sees.dedup();
        }
        sees
    }
}

/// `nodes` split at `at` into two groups, each sorted.
fn split(nodes: Vec<NodeId>, at: usize) -> Vec<Vec<NodeId>> {
    let (a, b) = nodes.split_at(at.min(nodes.len()));
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    vec![a, b]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(seed: u64) -> Schedule {
        Schedule::new(
            Kind::ALL.to_vec(),
            Vec::new(),
            Duration::from_secs(1),
            5,
            seed,
        )
    }

    #[test]
    fn equal_seeds_give_equal_schedules() {
        let steps = |seed| {
            let mut s = schedule(seed);
            (0..50).map(|_| s.next_step()).collect::<Vec<_>>()
        };
        assert_eq!(steps(3), steps(3));
        assert_ne!(steps(3), steps(4));
        let all = steps(3);
        assert!(
            all.iter()
                .all(|s| s.wait < Duration::from_secs(2) && s.hold < Duration::from_secs(2))
        );
        for kind in Kind::ALL {
            assert!(
                all.iter().any(|s| s.fault.kind() == kind),
                "{kind} never chosen"
            );
        }
    }

    fn cut(fault: &Fault, a: NodeId, b: NodeId) -> bool {
        let Fault::Partition { cuts, .. } = fault else {
            panic!()
        };
        cuts.contains(&(a, b))
    }

    #[test]
    fn default_shapes_never_ask_for_a_leader() {
        let mut s = Schedule::new(
            vec![Kind::Partition],
            Vec::new(),
            Duration::from_secs(1),
            5,
            9,
        );
        for _ in 0..500 {
            let Fault::Partition { shape, .. } = s.next_step().fault else {
                unreachable!("only partitions were asked for")
            };
            assert_ne!(
                shape,
                Shape::Leader,
                "a system that elects no leader cannot take it"
            );
        }
    }

    #[test]
    fn shapes_cut_what_they_say() {
        let mut s = schedule(1);
        let halves = s.partition(Shape::Halves);
        let Fault::Partition {
            groups, one_way, ..
        } = &halves
        else {
            panic!()
        };
        assert_eq!(groups, &vec![vec![0, 1], vec![2, 3, 4]]);
        assert!(cut(&halves, 0, 2));
        assert_eq!(cut(&halves, 2, 0), !one_way);
        assert!(!cut(&halves, 0, 1) && !cut(&halves, 3, 4));

        let ring = s.partition(Shape::MajoritiesRing);
        let Fault::Partition { groups: sees, .. } = &ring else {
            panic!()
        };
        for view in sees {
            assert_eq!(view.len(), 3, "every node sees a majority: {sees:?}");
        }
        let distinct: std::collections::HashSet<_> = sees.iter().collect();
        assert_eq!(distinct.len(), 5, "no two nodes see the same majority");

        let bridge = s.partition(Shape::Bridge);
        let Fault::Partition { groups, .. } = &bridge else {
            panic!()
        };
        let b = groups[2][0];
        for other in 0..5 {
            assert!(
                !cut(&bridge, b, other) && !cut(&bridge, other, b),
                "the bridge talks to all"
            );
        }
        assert!(cut(&bridge, groups[0][0], groups[1][0]));

        for shape in [Shape::One, Shape::Minority, Shape::Majority] {
            let Fault::Partition { groups, .. } = s.partition(shape) else {
                panic!()
            };
            let sizes = (groups[0].len(), groups[1].len());
            let want = match shape {
                Shape::One => (1, 4),
                Shape::Minority => (2, 3),
                _ => (3, 2),
            };
            assert_eq!(sizes, want, "{shape:?}");
        }
    }

    #[test]
    fn crash_faults_strike_at_the_points_asked_for() {
        let plan = CrashPlan::parse("send:VoteGranted+persist@0.01").unwrap();
        let mut s = Schedule::new(vec![Kind::Crash], Vec::new(), Duration::from_secs(1), 5, 7)
            .with_crash_plans(vec![plan], Duration::from_millis(80));
        for _ in 0..50 {
            let Fault::Crash {
                nodes,
                rules,
                down_ms,
            } = s.next_step().fault
            else {
                panic!("only crash faults were asked for")
            };
            assert_eq!(rules.len(), 2);
            assert_eq!(rules[0].point, CrashPoint::Send(vec!["VoteGranted".into()]));
            assert!((0.2..=1.0).contains(&rules[0].chance), "{rules:?}");
            assert_eq!(
                (&rules[1].point, rules[1].chance),
                (&CrashPoint::Persist(Vec::new()), 0.01)
            );
            assert!((1..=5).contains(&nodes.len()));
            assert!((1..=80).contains(&down_ms), "{down_ms}");
        }
    }

    #[test]
    fn a_zero_gap_puts_faults_back_to_back_and_crashes_can_arm_every_node() {
        let interval = Duration::from_millis(500);
        let mut s = Schedule::new(vec![Kind::Crash], Vec::new(), interval, 3, 9)
            .with_gap(Duration::ZERO)
            .crashing_every_node();
        for _ in 0..50 {
            let step = s.next_step();
            assert_eq!(step.wait, Duration::ZERO);
            assert!(step.hold < 2 * interval);
            let Fault::Crash { nodes, .. } = step.fault else {
                panic!("only crash faults were asked for")
            };
            assert_eq!(nodes, [0, 1, 2]);
        }
        let mut s = Schedule::new(vec![Kind::Kill], Vec::new(), interval, 3, 9)
            .with_gap(Duration::from_millis(40));
        assert!((0..50).all(|_| s.next_step().wait < Duration::from_millis(40)));
    }

    #[test]
    fn a_planned_schedule_replays_the_seeds_steps_in_order_and_time() {
        let kinds = Kind::ALL.to_vec();
        let interval = Duration::from_millis(500);
        let mut seeded = Schedule::new(kinds.clone(), Vec::new(), interval, 5, 3);
        let file =
            Schedule::new(kinds, Vec::new(), interval, 5, 3).planned(Duration::from_secs(20));
        assert!(file.steps.len() > 5);
        // Through JSON and back, as a file on disk would go.
        let text = serde_json::to_string(&file).unwrap();
        let file: ScheduleFile = serde_json::from_str(&text).unwrap();
        let mut replayed = Schedule::replaying(&file);
        for _ in 0..file.steps.len() {
            assert_eq!(replayed.upcoming(), Some(seeded.next_step()));
        }
        assert_eq!(replayed.upcoming(), None, "no more faults after the file's");
    }

    #[test]
    fn removing_a_step_keeps_the_others_at_their_times() {
        let step = |at_ms, hold_ms| PlannedStep {
            at_ms,
            hold_ms,
            fault: Fault::Kill { nodes: vec![0] },
        };
        let file = ScheduleFile::new(vec![step(3_000, 500), step(1_000, 500)]);
        let waits: Vec<Duration> = file.steps().iter().map(|s| s.wait).collect();
        assert_eq!(
            waits,
            [Duration::from_millis(1_000), Duration::from_millis(1_500)]
        );
    }

    #[test]
    fn every_kind_reads_from_the_readmes_json() {
        for (text, kind) in [
            (
                r#"{"kind": "partition", "shape": "halves", "one_way": false, "groups": [[0], [1, 2]], "cuts": [[0, 1], [1, 0]]}"#,
                Kind::Partition,
            ),
            (r#"{"kind": "kill", "nodes": [1]}"#, Kind::Kill),
            (r#"{"kind": "pause", "nodes": [0, 2]}"#, Kind::Pause),
            (
                r#"{"kind": "clock", "mode": "bump", "offsets": [[3, 1757]]}"#,
                Kind::Clock,
            ),
            (
                r#"{"kind": "clock", "mode": {"strobe": {"period_ms": 50}}, "offsets": [[0, -300]]}"#,
                Kind::Clock,
            ),
            (
                r#"{"kind": "packet", "nodes": [1], "delay_ms": 20, "jitter_ms": 10, "loss": 0.1, "duplicate": 0.05}"#,
                Kind::Packet,
            ),
            (
                r#"{"kind": "crash", "nodes": [0], "rules": [{"point": {"persist": ["Entries"]}, "chance": 0.7}], "down_ms": 500}"#,
                Kind::Crash,
            ),
        ] {
            let fault: Fault = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(fault.kind(), kind);
        }
        let unknown = r#"{"kind": "kill", "nodes": [1], "when": "now"}"#;
        assert!(serde_json::from_str::<Fault>(unknown).is_err());
    }
}
