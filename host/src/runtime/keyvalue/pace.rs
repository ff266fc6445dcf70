//! The pace of one plugin's key-value writes: a token bucket of bytes per
//! second shared by all its deliveries. A write over the pace waits (within
//! the plugin's deadline) instead of failing, so a plugin writing in a loop
//! slows itself down, and the journal it shares with the webhook never
//! spends more than that on it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second, with a second's worth of burst (at least one largest
/// value, so any single write can go through).
#[derive(Debug)]
pub struct KvPace {
    per_second: f64,
    burst: f64,
    /// Bytes that may be written now (negative: owed), and when that was.
    bucket: Mutex<(f64, Instant)>,
}

impl KvPace {
    /// A pace of `bytes_per_second` (0: unpaced).
    pub fn new(bytes_per_second: u64) -> Self {
        let per_second = bytes_per_second as f64;
        let burst = per_second.max(super::MAX_VALUE_BYTES as f64);
        Self {
            per_second,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
        }
    }

    /// How long a write of `bytes` must wait before it goes: zero within
    /// the pace. The bytes are counted at once, so writers queue fairly.
    pub fn take(&self, bytes: usize) -> Duration {
        if self.per_second <= 0.0 {
            return Duration::ZERO;
        }
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, then) = *bucket;
        let refilled =
            (tokens + now.duration_since(then).as_secs_f64() * self.per_second).min(self.burst);
        let left = refilled - bytes as f64;
        *bucket = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.per_second)
        }
    }

    /// Give back `bytes` taken for a write that wrote nothing (refused by
    /// the quota): the pace spends the journal's time on what is written,
    /// and a plugin at its quota is answered at once, not at the pace.
    pub fn refund(&self, bytes: usize) {
        if self.per_second <= 0.0 {
            return;
        }
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        bucket.0 = (bucket.0 + bytes as f64).min(self.burst);
    }

    /// Wait as [`KvPace::take`] says.
    pub async fn wait(&self, bytes: usize) {
        let wait = self.take(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One plugin's key-value paces: writes (the journal's writer thread is
/// shared with the webhook) and reads (each read is the host's work on a
/// thread apart from the guest's, outside the plugin's share of them).
#[derive(Debug)]
pub struct KvPaces {
    /// Bytes written per second.
    pub write: KvPace,
    /// Bytes read per second, each read counting at least
    /// [`KV_READ_MIN_BYTES`](crate::runtime::KV_READ_MIN_BYTES).
    pub read: KvPace,
}

#[cfg(test)]
mod tests {
    use super::KvPace;
    use std::time::Duration;

    #[test]
    fn a_refund_gives_back_what_a_refused_write_took() {
        let pace = KvPace::new(1024 * 1024);
        assert_eq!(pace.take(1024 * 1024), Duration::ZERO);
        pace.refund(1024 * 1024);
        assert_eq!(pace.take(1024 * 1024), Duration::ZERO, "refunded");
        assert!(pace.take(1024 * 1024) > Duration::from_millis(500), "spent");
    }

    #[test]
    fn writes_within_the_burst_go_at_once_and_the_rest_wait_their_share() {
        let pace = KvPace::new(4 * 1024 * 1024);
        // A second's worth goes at once.
        for _ in 0..4 {
            assert_eq!(pace.take(1024 * 1024), Duration::ZERO);
        }
        // Then each MiB waits about a quarter of a second more than the last.
        let first = pace.take(1024 * 1024);
        let second = pace.take(1024 * 1024);
        assert!(first > Duration::from_millis(200), "{first:?}");
        assert!(second > first + Duration::from_millis(200), "{second:?}");
    }

    #[test]
    fn zero_is_unpaced() {
        let pace = KvPace::new(0);
        for _ in 0..100 {
            assert_eq!(pace.take(1024 * 1024), Duration::ZERO);
        }
    }
}
