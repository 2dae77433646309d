//! A clock strobe beside a backend: a task that switches chosen nodes' clocks between their
//! offsets and none, every period, until the clock fault is healed.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fault::{ClockMode, Fault, NodeId};

/// The strobe task of a backend, if one runs.
#[derive(Default)]
pub(crate) struct Strobe(Option<(watch::Sender<bool>, JoinHandle<()>)>);

impl Strobe {
    /// Starts calling `flip(on)` every `period`, `on` true first, then false, then true...
    pub(crate) fn start<F, Fut>(&mut self, period: Duration, mut flip: F)
    where
        F: FnMut(bool) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut on = true;
            loop {
                flip(on).await;
                on = !on;
                tokio::select! {
                    biased;
                    _ = stopped.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(period) => {}
                }
            }
        });
        self.0 = Some((stop, task));
    }

    /// Stops the task, if one runs, and waits for it.
    pub(crate) async fn stop(&mut self) {
        if let Some((stop, task)) = self.0.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}

/// The nodes and the period of a strobing clock fault.
pub(crate) fn strobing(fault: &Fault) -> Option<(Vec<NodeId>, Duration)> {
    match fault {
        Fault::Clock {
            mode: ClockMode::Strobe { period_ms },
            offsets,
        } => Some((
            offsets.iter().map(|&(n, _)| n).collect(),
            Duration::from_millis(*period_ms),
        )),
        _ => None,
    }
}
