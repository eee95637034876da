//! Login and registration attempts, limited per client address and per username (GCRA, from
//! `governor`): past the limit the answer is 429 with `Retry-After`, before any password is
//! hashed. The key sets are pruned as they go, so a flood of made-up names costs bounded
//! memory.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use magnet_core::Reason;

use crate::error::{ApiError, ApiResult};

/// Keys kept before the limiters drop the ones that are back to full capacity.
const PRUNE_AT: usize = 10_000;

/// The attempts' rate limiters, one keyed by client address and one by username, shared by
/// clones.
#[derive(Clone)]
pub struct Logins {
    by_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    by_name: Arc<DefaultKeyedRateLimiter<String>>,
}

impl Logins {
    /// `per_ip` and `per_name` attempts a minute (each at least 1), allowed in a burst.
    pub fn new(per_ip: u32, per_name: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            by_ip: Arc::new(RateLimiter::keyed(quota(per_ip))),
            by_name: Arc::new(RateLimiter::keyed(quota(per_name))),
        }
    }

    /// Takes one attempt from `ip`, and from `name` when given; 429 when either is spent.
    pub fn attempt(&self, ip: IpAddr, name: Option<&str>) -> ApiResult<()> {
        self.prune();
        let clock = DefaultClock::default();
        if let Err(wait) = self.by_ip.check_key(&ip) {
            return Err(too_many(wait.wait_time_from(clock.now()).as_secs() + 1));
        }
        if let Some(name) = name
            && let Err(wait) = self.by_name.check_key(&name.to_owned())
        {
            return Err(too_many(wait.wait_time_from(clock.now()).as_secs() + 1));
        }
        Ok(())
    }

    fn prune(&self) {
        if self.by_ip.len() > PRUNE_AT {
            self.by_ip.retain_recent();
        }
        if self.by_name.len() > PRUNE_AT {
            self.by_name.retain_recent();
        }
    }
}

fn too_many(retry_after: u64) -> ApiError {
    ApiError::because(
        Reason::RateLimited,
        format!("too many attempts; try again in {retry_after} s"),
    )
    .retry_after(retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_address_and_name() {
        let l = Logins::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!(l.attempt(a, Some("alice")).is_ok());
        assert!(l.attempt(a, Some("alice")).is_ok());
        let e = l.attempt(b, Some("alice")).expect_err("name spent");
        assert_eq!(e.reason, Reason::RateLimited);
        assert_eq!(e.reason.code(), magnet_core::ErrorCode::ResourceExhausted);
        assert!(l.attempt(a, Some("bob")).is_ok());
        assert!(l.attempt(a, Some("carol")).is_err(), "address spent");
    }
}
