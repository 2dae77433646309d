//! The checkout systems' settings (`--set fail.payment=0.1,bug=...`).

use serde::{Deserialize, Serialize};

/// A planted bug (all off by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Services apply a retried step again.
    NoIdempotency,
    /// A failed saga leaves its earlier steps applied.
    NoCompensation,
    /// The saga log is not persisted: a crashed orchestrator forgets in-flight orders.
    VolatileLog,
    /// The two-phase commit coordinator forgets its decisions on restart.
    NoDecisionLog,
}

impl Bug {
    /// Every bug, by name, with the systems it applies to.
    pub const ALL: [(&'static str, Bug, &'static [&'static str]); 4] = [
        ("no-idempotency", Bug::NoIdempotency, &["saga", "twopc"]),
        ("no-compensation", Bug::NoCompensation, &["saga"]),
        ("volatile-log", Bug::VolatileLog, &["saga"]),
        ("no-decision-log", Bug::NoDecisionLog, &["twopc"]),
    ];
}

/// Every setting of a checkout cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `saga` or `twopc`.
    pub system: String,
    /// Share of steps each service declines: inventory, payment, shipping.
    pub fail: [f64; 3],
    /// SKUs `sku-1`..: how many, and the stock of each.
    pub skus: u32,
    /// Initial stock per SKU.
    pub stock: i64,
    /// Accounts `acct-1`..: how many.
    pub accounts: u32,
    /// Initial balance per account.
    pub balance: i64,
    /// How long the coordinator waits for a step's answer before sending it again, in ms.
    pub retry_ms: u64,
    /// How long `POST /orders` waits for the outcome before answering 504, in ms.
    pub timeout_ms: u64,
    /// The planted bug, if any.
    pub bug: Option<Bug>,
}

impl Settings {
    /// The defaults of `system` (`saga` or `twopc`).
    pub fn new(system: &str) -> Self {
        Settings {
            system: system.to_string(),
            fail: [0.0; 3],
            skus: 5,
            stock: 5_000,
            accounts: 10,
            balance: 50_000,
            retry_ms: 200,
            timeout_ms: 1_000,
            bug: None,
        }
    }

    /// The keys `--set` accepts.
    pub const KEYS: &'static str = "fail.inventory, fail.payment, fail.shipping (share of steps \
        declined, 0..=1, default 0), skus (default 5), stock (per SKU, default 5000), accounts \
        (default 10), balance (per account, default 50000), retry-ms (default 200), timeout-ms \
        (default 1000), bug (saga: no-idempotency|no-compensation|volatile-log; twopc: \
        no-idempotency|no-decision-log)";

    /// Applies `key=value` pairs, then checks the result.
    pub fn apply<'a>(mut self, pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        for (key, value) in crate::key_values(pairs, Self::KEYS)? {
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{key}={value}: expected a whole number"))
            };
            let share = || match value.parse::<f64>() {
                Ok(s) if (0.0..=1.0).contains(&s) => Ok(s),
                _ => Err(format!("{key}={value}: expected a share between 0 and 1")),
            };
            match key {
                "fail.inventory" => self.fail[0] = share()?,
                "fail.payment" => self.fail[1] = share()?,
                "fail.shipping" => self.fail[2] = share()?,
                "skus" => self.skus = number()?.clamp(1, 10_000) as u32,
                "stock" => self.stock = number()? as i64,
                "accounts" => self.accounts = number()?.clamp(1, 10_000) as u32,
                "balance" => self.balance = number()? as i64,
                "retry-ms" => self.retry_ms = number()?.max(10),
                "timeout-ms" => self.timeout_ms = number()?.max(50),
                "bug" => {
                    let (_, bug, systems) = Bug::ALL
                        .iter()
                        .find(|(name, _, _)| *name == value)
                        .ok_or_else(|| format!("bug={value}: expected one of {}", Self::KEYS))?;
                    if !systems.contains(&self.system.as_str()) {
                        return Err(format!(
                            "bug={value} is a bug of {}, not of {}",
                            systems.join(" and "),
                            self.system
                        ));
                    }
                    self.bug = Some(*bug);
                }
                other => {
                    return Err(format!(
                        "unknown setting `{other}` for {}; valid keys: {}",
                        self.system,
                        Self::KEYS
                    ));
                }
            }
        }
        Ok(self)
    }
}

impl std::fmt::Display for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fail={:?} skus={} stock={} accounts={} balance={} retry-ms={} timeout-ms={}",
            self.fail,
            self.skus,
            self.stock,
            self.accounts,
            self.balance,
            self.retry_ms,
            self.timeout_ms
        )?;
        if let Some(bug) = self.bug {
            let name = Bug::ALL.iter().find(|(_, b, _)| *b == bug).map(|b| b.0);
            write!(f, " bug={}", name.unwrap_or("?"))?;
        }
        Ok(())
    }
}
