//! Requests a replica took from a shared bucket ahead of time: a count of
//! admissions left, and the end of the window they were counted in.
//! Sharded, as the local buckets are, so that different buckets rarely
//! contend; expired leases are swept when a shard has doubled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
const SWEEP_AT: usize = 1024;

/// How many requests to take at once from a bucket of `capacity`: 1% of
/// it, and 1 (no lease: every request asks) below 200.
pub(crate) fn size(capacity: u64) -> u64 {
    (capacity / 100).max(1)
}

#[derive(Debug)]
pub(crate) struct Leases {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Debug)]
struct Shard {
    leases: HashMap<String, Lease>,
    sweep_at: usize,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    left: u64,
    until: Instant,
}

impl Default for Leases {
    fn default() -> Leases {
        Leases {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        leases: HashMap::new(),
                        sweep_at: SWEEP_AT,
                    })
                })
                .collect(),
        }
    }
}

fn shard_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

impl Leases {
    fn shard(&self, key: &str) -> Option<std::sync::MutexGuard<'_, Shard>> {
        let shard = self.shards.get(shard_of(key))?;
        Some(match shard.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        })
    }

    /// Takes one admission from `key`'s lease, if it has one left in its
    /// window.
    pub(crate) fn take(&self, key: &str) -> bool {
        let Some(mut shard) = self.shard(key) else {
            return false;
        };
        let now = Instant::now();
        match shard.leases.get_mut(key) {
            Some(lease) if lease.left > 0 && lease.until > now => {
                lease.left -= 1;
                true
            }
            _ => false,
        }
    }

    /// Keeps `left` admissions for `key` until `window_left` from now.
    pub(crate) fn put(&self, key: &str, left: u64, window_left: Duration) {
        let Some(mut shard) = self.shard(key) else {
            return;
        };
        let now = Instant::now();
        if shard.leases.len() >= shard.sweep_at {
            shard.leases.retain(|_, l| l.until > now && l.left > 0);
            shard.sweep_at = (shard.leases.len() * 2).max(SWEEP_AT);
        }
        let until = now + window_left;
        match shard.leases.get_mut(key) {
            // Requests that asked at the same time each took a lease: the
            // admissions add up rather than replace each other.
            Some(lease) if lease.until > now => {
                lease.left += left;
                lease.until = until;
            }
            _ => {
                shard.leases.insert(key.to_owned(), Lease { left, until });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_used_up_then_gone() {
        let leases = Leases::default();
        assert!(!leases.take("b"));
        leases.put("b", 2, Duration::from_secs(60));
        assert!(leases.take("b"));
        assert!(leases.take("b"));
        assert!(!leases.take("b"));
    }

    #[test]
    fn leases_taken_at_once_add_up() {
        let leases = Leases::default();
        leases.put("b", 1, Duration::from_secs(60));
        leases.put("b", 1, Duration::from_secs(60));
        assert!(leases.take("b"));
        assert!(leases.take("b"));
        assert!(!leases.take("b"));
    }

    #[test]
    fn a_lease_ends_with_its_window() {
        let leases = Leases::default();
        leases.put("b", 10, Duration::ZERO);
        assert!(!leases.take("b"));
    }

    #[test]
    fn small_buckets_take_no_lease() {
        assert_eq!(size(30), 1);
        assert_eq!(size(199), 1);
        assert_eq!(size(200), 2);
        assert_eq!(size(2_000_000_000), 20_000_000);
    }
}
