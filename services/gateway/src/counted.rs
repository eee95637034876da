//! Per-key counts of things in progress (a user's open streams), each held
//! by a guard that counts itself out when dropped, so no path can forget to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The counts per key, shared by clones; a key with nothing held is not kept.
#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<HashMap<String, usize>>>);

/// One counted thing; dropping it counts it out.
pub struct Held {
    counts: Counts,
    key: String,
}

impl Counts {
    /// Counts one more for `key`; returns its guard and how many `key` held before it.
    pub fn hold(&self, key: &str) -> (Held, usize) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key.to_owned()).or_default();
        let before = *n;
        *n += 1;
        (
            Held {
                counts: self.clone(),
                key: key.to_owned(),
            },
            before,
        )
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_per_key_and_forgets_on_drop() {
        let counts = super::Counts::default();
        let (a, before) = counts.hold("alice");
        assert_eq!(before, 0);
        let (_b, before) = counts.hold("alice");
        assert_eq!(before, 1);
        assert_eq!(counts.hold("bob").1, 0);
        drop(a);
        assert_eq!(counts.hold("alice").1, 1);
    }
}
