//! Counters that many threads add to without a locked instruction: how
//! often each action of a pipeline ran.
//!
//! A shared `AtomicU64` per counter costs a `lock xadd` per count, about
//! 5 ns on the machines we measure on (against 0.5 ns for a load and a
//! store), and a request through a ten-rule policy counts four actions.
//! Instead, each thread that counts owns a row of counters, which only it
//! writes: a count is a relaxed load and store of its own row. A read sums
//! the rows. Threads past the first [`ROWS`] share a last row with
//! `fetch_add`, so a count is never lost.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Rows owned by one thread each; later threads share [`Tally::shared`].
const ROWS: usize = 64;

/// The next thread's row.
static NEXT_ROW: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's row, in every [`Tally`]; taken on the first count.
    static ROW: usize = NEXT_ROW.fetch_add(1, Ordering::Relaxed);
}

/// `width` counters, added to from any thread.
#[derive(Debug)]
pub(crate) struct Tally {
    width: usize,
    /// A thread's row is made on its first count.
    rows: Box<[OnceLock<Box<[AtomicU64]>>]>,
    shared: Box<[AtomicU64]>,
}

/// Where one thread counts, for a run of counts.
pub(crate) enum Counts<'t> {
    /// The thread's own row: written only by this thread.
    Own(&'t [AtomicU64]),
    /// The row threads past [`ROWS`] share.
    Shared(&'t [AtomicU64]),
}

impl Tally {
    pub(crate) fn new(width: usize) -> Tally {
        Tally {
            width,
            rows: (0..ROWS).map(|_| OnceLock::new()).collect(),
            shared: counters(width),
        }
    }

    /// The calling thread's counters: look them up once per run of counts.
    pub(crate) fn counts(&self) -> Counts<'_> {
        let row = ROW.with(|r| *r);
        match self.rows.get(row) {
            Some(own) => Counts::Own(own.get_or_init(|| counters(self.width))),
            None => Counts::Shared(&self.shared),
        }
    }

    /// Counter `i`, summed over the threads.
    pub(crate) fn get(&self, i: usize) -> u64 {
        let own = self.rows.iter().filter_map(OnceLock::get);
        own.chain([&self.shared])
            .filter_map(|row| row.get(i))
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl Counts<'_> {
    /// Adds one to counter `i`.
    pub(crate) fn add(&self, i: usize) {
        match self {
            // INVARIANT: only the thread that owns the row writes it, so
            // a load and a store lose no count.
            Counts::Own(row) => {
                if let Some(c) = row.get(i) {
                    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
                }
            }
            Counts::Shared(row) => {
                if let Some(c) = row.get(i) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A row of `width` counters, rounded up to whole cache lines so that two
/// threads' rows never share one.
fn counters(width: usize) -> Box<[AtomicU64]> {
    (0..width.next_multiple_of(8))
        .map(|_| AtomicU64::new(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        // More threads than rows, so that some share the last one.
        let threads = ROWS + 16;
        let tally = Arc::new(Tally::new(3));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let tally = Arc::clone(&tally);
                std::thread::spawn(move || {
                    let counts = tally.counts();
                    for _ in 0..1000 {
                        counts.add(0);
                        counts.add(t % 2 + 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a counting thread");
        }
        assert_eq!(tally.get(0), 1000 * threads as u64);
        assert_eq!(tally.get(1) + tally.get(2), 1000 * threads as u64);
        assert_eq!(tally.get(1), 1000 * threads.div_ceil(2) as u64);
        assert_eq!(tally.get(3), 0, "past the width: nothing counts there");
    }
}
