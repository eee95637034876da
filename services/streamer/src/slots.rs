//! The node's session slots: at most `streamer.max_sessions` in all and
//! `streamer.max_sessions_per_user` for one user, reserved atomically before the (slow)
//! negotiation starts, so concurrent offers cannot overshoot the limit. A slot is freed when
//! its [`Slot`] drops, i.e. when the session leaves the table.
//!
//! The user of a session is the tag the gateway puts before its id (`<12 hex>_<client id>`,
//! see the gateway's `webrtc::scoped`); an id without one is its own user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use magnet_core::SessionId;

#[derive(Default)]
struct Counts {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// The node's slot counts, shared by clones; the session table takes one per offer.
#[derive(Clone)]
pub struct Slots {
    counts: Arc<Mutex<Counts>>,
    max: usize,
    per_user: usize,
}

/// A reserved slot; dropping it frees it.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    user: String,
}

/// Length of the user tag the gateway puts before a session id.
const TAG_LEN: usize = 12;

/// The user a session id belongs to.
pub fn user_of(id: &SessionId) -> &str {
    match id.as_str().split_once('_') {
        Some((tag, _)) if tag.len() == TAG_LEN && tag.bytes().all(|b| b.is_ascii_hexdigit()) => tag,
        _ => id.as_str(),
    }
}

impl Slots {
    /// `max` slots in all, `per_user` for one user; none taken.
    pub fn new(max: usize, per_user: usize) -> Self {
        Self {
            counts: Arc::default(),
            max,
            per_user,
        }
    }

    /// Reserves a slot for `id`, or says which limit is reached.
    pub fn take(&self, id: &SessionId) -> Result<Slot, String> {
        let user = user_of(id).to_owned();
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.max {
            return Err(format!(
                "this node already serves its limit of {} sessions; try again later",
                self.max
            ));
        }
        let mine = c.by_user.get(&user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(format!(
                "you already have {mine} sessions on this node, the most one user may have; close a player first"
            ));
        }
        c.total += 1;
        c.by_user.insert(user.clone(), mine + 1);
        Ok(Slot {
            counts: self.counts.clone(),
            user,
        })
    }

    /// Slots taken now, by all users.
    pub fn in_use(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_user.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::parse(s).expect("id")
    }

    #[test]
    fn limits_in_all_and_per_user_and_frees_on_drop() {
        let slots = Slots::new(3, 2);
        let a1 = slots.take(&id("0123456789ab_one")).expect("a1");
        let _a2 = slots.take(&id("0123456789ab_two")).expect("a2");
        let err = slots
            .take(&id("0123456789ab_three"))
            .err()
            .unwrap_or_default();
        assert!(err.contains("2 sessions"), "{err}");
        let _b = slots.take(&id("ba9876543210_one")).expect("another user");
        let err = slots.take(&id("client-untagged")).err().unwrap_or_default();
        assert!(err.contains("limit of 3"), "{err}");
        drop(a1);
        assert_eq!(slots.in_use(), 2);
        slots.take(&id("0123456789ab_four")).expect("freed");
    }

    #[test]
    fn untagged_ids_are_their_own_user() {
        assert_eq!(user_of(&id("client-1700-abc")), "client-1700-abc");
        assert_eq!(user_of(&id("0123456789ab_x")), "0123456789ab");
        assert_eq!(user_of(&id("short_x")), "short_x");
    }
}
