//! One at a time per key: a user's submits take turns, so the check of how many tasks the user
//! has and the submit that adds one happen together, never interleaved with another submit of
//! the same user. Entries exist only while someone holds or waits for a turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

type Gates = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// The gates of the keys someone holds or waits for, shared by clones.
#[derive(Clone, Default)]
pub struct Turns(Gates);

/// A turn; the next waiter for the same key goes when it drops.
pub struct Turn {
    gates: Gates,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits until no one else holds `key`'s turn.
    pub async fn take(&self, key: &str) -> Turn {
        let gate = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_owned()).or_default().clone()
        };
        let guard = gate.lock_owned().await;
        Turn {
            gates: self.0.clone(),
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut map = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        self.guard = None;
        // Only the map still knows the gate: no one holds or waits for it.
        if map
            .get(&self.key)
            .is_some_and(|g| Arc::strong_count(g) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn one_turn_per_key_and_nothing_kept() {
        let turns = super::Turns::default();
        let a = turns.take("alice").await;
        let _b = turns.take("bob").await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), turns.take("alice")).await;
        assert!(
            waiting.is_err(),
            "alice's second submit waits for her first"
        );
        drop(a);
        let again = turns.take("alice").await;
        drop(again);
        drop(_b);
        assert_eq!(turns.len(), 0);
    }
}
