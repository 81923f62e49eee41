//! State in this process's memory: what one replica needs, and what the
//! tests of the callers run against. Entries past their time are swept
//! when the map has doubled since the last sweep, so memory stays
//! proportional to the live entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Verdict, sliding_window};

/// Entries before the first sweep.
const SWEEP_AT: usize = 1024;

#[derive(Debug)]
pub(crate) struct Memory {
    origin: Instant,
    buckets: Mutex<Swept<Bucket>>,
    once: Mutex<Swept<Instant>>,
    values: Mutex<Swept<(Vec<u8>, Instant)>>,
    /// Each set's members with their expiries, and the set's own.
    sets: Mutex<Swept<(HashMap<String, Instant>, Instant)>>,
}

impl Default for Memory {
    fn default() -> Memory {
        Memory {
            origin: Instant::now(),
            buckets: Mutex::new(Swept::default()),
            once: Mutex::new(Swept::default()),
            values: Mutex::new(Swept::default()),
            sets: Mutex::new(Swept::default()),
        }
    }
}

#[derive(Debug)]
struct Swept<T> {
    map: HashMap<String, T>,
    sweep_at: usize,
}

impl<T> Default for Swept<T> {
    fn default() -> Self {
        Swept {
            map: HashMap::new(),
            sweep_at: SWEEP_AT,
        }
    }
}

impl<T> Swept<T> {
    fn sweep(&mut self, live: impl FnMut(&T) -> bool) {
        if self.map.len() >= self.sweep_at {
            let mut live = live;
            self.map.retain(|_, v| live(v));
            self.sweep_at = (self.map.len() * 2).max(SWEEP_AT);
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    index: u64,
    current: u64,
    previous: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Memory {
    pub(crate) fn hit(&self, bucket: &str, capacity: u64, window: Duration) -> Verdict {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX).max(1);
        let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let index = now / nanos;
        let into = (now % nanos) as f64 / nanos as f64;
        let mut buckets = lock(&self.buckets);
        buckets.sweep(|b| b.index + 1 >= index);
        let b = buckets.map.entry(bucket.to_owned()).or_insert(Bucket {
            index,
            current: 0,
            previous: 0,
        });
        if b.index != index {
            b.previous = if b.index + 1 == index { b.current } else { 0 };
            b.current = 0;
            b.index = index;
        }
        let verdict = sliding_window(b.previous, b.current, into, capacity, window);
        if verdict.is_none() {
            b.current += 1;
        }
        verdict
    }

    pub(crate) fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        let now = Instant::now();
        let mut values = lock(&self.values);
        values.sweep(|(_, until)| *until > now);
        values
            .map
            .insert(key.to_owned(), (value.to_vec(), now + ttl));
    }

    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        let values = lock(&self.values);
        let (v, until) = values.map.get(key)?;
        (*until > Instant::now()).then(|| v.clone())
    }

    pub(crate) fn delete(&self, key: &str) -> bool {
        let mut values = lock(&self.values);
        values
            .map
            .remove(key)
            .is_some_and(|(_, until)| until > Instant::now())
    }

    pub(crate) fn add_member(&self, key: &str, member: &str, ttl: Duration) {
        let now = Instant::now();
        let mut sets = lock(&self.sets);
        sets.sweep(|(_, until)| *until > now);
        let entry = sets
            .map
            .entry(key.to_owned())
            .or_insert_with(|| (HashMap::new(), now));
        entry.0.retain(|_, until| *until > now);
        entry.0.insert(member.to_owned(), now + ttl);
        entry.1 = entry.1.max(now + ttl);
    }

    pub(crate) fn members(&self, key: &str) -> Vec<String> {
        let sets = lock(&self.sets);
        let now = Instant::now();
        match sets.map.get(key) {
            Some((set, until)) if *until > now => {
                let mut live: Vec<String> = set
                    .iter()
                    .filter(|(_, t)| **t > now)
                    .map(|(m, _)| m.clone())
                    .collect();
                live.sort();
                live
            }
            _ => Vec::new(),
        }
    }

    pub(crate) fn remove_member(&self, key: &str, member: &str) {
        let mut sets = lock(&self.sets);
        if let Some((set, _)) = sets.map.get_mut(key) {
            set.remove(member);
        }
    }

    pub(crate) fn once(&self, key: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut once = lock(&self.once);
        once.sweep(|until| *until > now);
        match once.map.get(key) {
            Some(until) if *until > now => false,
            _ => {
                once.map.insert(key.to_owned(), now + ttl);
                true
            }
        }
    }
}
