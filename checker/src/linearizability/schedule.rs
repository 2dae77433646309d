//! Runs the searches of every part of a history on all cores, in slices.
//!
//! Each worker takes the next part from a queue, runs its search for a slice of steps, and puts
//! it back at the end if it is not done, with a slice twice as long. So every part gets started
//! early and a part that fails quickly is found quickly (its FAIL cancels the rest), while a
//! hard part still gets long uninterrupted runs once the quick ones are done.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::{PartOutcome, Task};

/// A task waiting for its next slice: (task index, task, slice length).
type Queued<'a> = (usize, Box<dyn Task + 'a>, u64);

/// Steps in a part's first slice.
const FIRST_SLICE: u64 = 1 << 14;

/// Runs every task to an outcome; returns (task index, outcome) in completion order.
pub(super) fn run<'a>(tasks: Vec<(usize, Box<dyn Task + 'a>)>) -> Vec<(usize, PartOutcome)> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(tasks.len());
    let queue: Mutex<VecDeque<Queued<'a>>> = Mutex::new(
        tasks
            .into_iter()
            .map(|(i, task)| (i, task, FIRST_SLICE))
            .collect(),
    );
    let done = Mutex::new(Vec::new());
    let work = || {
        loop {
            let next = queue
                .lock()
                .expect("no worker panics holding the queue")
                .pop_front();
            let Some((i, mut task, slice)) = next else {
                return;
            };
            match task.advance(slice) {
                Some(outcome) => done
                    .lock()
                    .expect("no worker panics holding it")
                    .push((i, outcome)),
                None => queue
                    .lock()
                    .expect("no worker panics holding the queue")
                    .push_back((i, task, slice.saturating_mul(2))),
            }
        }
    };
    if workers <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(work);
            }
        });
    }
    done.into_inner().expect("workers have finished")
}
