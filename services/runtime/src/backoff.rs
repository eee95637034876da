//! The one retry pause of every loop that waits for something to come back (NATS, a
//! JetStream pull or watch, a torrent's peers): exponential from a first pause to a most,
//! with jitter (backon), so that services restarting together do not retry in step.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// The pauses from `first`, doubling up to `most`, each lengthened by a random part of
/// itself (so a pause is in `[d, 2d)`), never ending: for `backon`'s `retry` and for
/// [`Backoff`].
pub fn builder(first: Duration, most: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(most)
        .without_max_times()
        .with_jitter()
}

/// The pauses of one retry loop; [`Backoff::reset`] after a success.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    most: Duration,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// Pauses shaped as by [`builder`]: from `first`, doubling up to `most`, with jitter.
    pub fn new(first: Duration, most: Duration) -> Self {
        let builder = builder(first, most);
        Self {
            builder,
            most,
            delays: builder.build(),
        }
    }

    /// The next pause.
    pub fn next_pause(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.most)
    }

    /// After a success: the next pause is the first again.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }

    /// Sleeps the next pause; false when `cancel` came first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let pause = self.next_pause();
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = cancel.cancelled() => false,
        }
    }
}

/// The pause before retry number `attempt` (from 0), for callers that count attempts
/// themselves (async-nats's reconnection).
pub fn nth(first: Duration, most: Duration, attempt: usize) -> Duration {
    // After 64 doublings any first pause is past any most: every later pause is alike.
    builder(first, most).build().nth(attempt.min(64)).unwrap_or(most)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(100);
    const MOST: Duration = Duration::from_secs(5);

    /// A pause of `d` with jitter is in `[d, 2d)`.
    fn about(pause: Duration, d: Duration) -> bool {
        pause >= d && pause < d * 2
    }

    #[test]
    fn pauses_double_to_the_most_with_jitter_and_start_over_after_a_reset() {
        let mut b = Backoff::new(FIRST, MOST);
        let pauses: Vec<Duration> = (0..10).map(|_| b.next_pause()).collect();
        assert!(about(pauses[0], FIRST), "{pauses:?}");
        assert!(about(pauses[1], FIRST * 2), "{pauses:?}");
        assert!(about(pauses[2], FIRST * 4), "{pauses:?}");
        assert!(pauses[6..].iter().all(|p| about(*p, MOST)), "{pauses:?}");
        b.reset();
        assert!(about(b.next_pause(), FIRST));
        // Jitter: a hundred first pauses are not all the same.
        let firsts: std::collections::HashSet<Duration> = (0..100)
            .map(|_| Backoff::new(FIRST, MOST).next_pause())
            .collect();
        assert!(firsts.len() > 50, "{}", firsts.len());
    }

    #[test]
    fn the_nth_pause_grows_and_caps() {
        assert!(about(nth(FIRST, MOST, 0), FIRST));
        assert!(about(nth(FIRST, MOST, 1), FIRST * 2));
        assert!(about(nth(FIRST, MOST, 30), MOST));
        assert!(about(nth(FIRST, MOST, usize::MAX), MOST));
    }

    #[tokio::test]
    async fn wait_sleeps_the_pause_or_ends_on_cancel() {
        let first = Duration::from_millis(20);
        let cancel = CancellationToken::new();
        let mut b = Backoff::new(first, MOST);
        let started = std::time::Instant::now();
        assert!(b.wait(&cancel).await);
        assert!(started.elapsed() >= first);
        cancel.cancel();
        let started = std::time::Instant::now();
        assert!(!b.wait(&cancel).await);
        assert!(started.elapsed() < first, "a cancelled wait ends at once");
    }
}
