//! A token bucket for log lines: what an outsider or a plugin can make the
//! host write is bounded by a rate, not by how hard they try. Used by the
//! runtime (per plugin version) and by ingest and admin (refused requests).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// `per_second` lines on average, bursts of `burst`; lines over the rate
/// are counted, not written.
#[derive(Debug)]
pub struct LogRate {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
    suppressed: AtomicU64,
}

impl LogRate {
    /// A bucket, full.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Take a token if there is one; count the line as suppressed if not.
    pub fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * self.per_second;
        state.0 = (state.0 + refill).min(self.burst);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Lines kept out of the log so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

impl Default for LogRate {
    /// 100 lines a second, bursts of 1,000.
    fn default() -> Self {
        Self::new(100, 1_000)
    }
}
