//! Restart pacing: restart intensity (OTP's MaxR in MaxT) and exponential
//! backoff with jitter and reset-after-stable (Akka's `restartWithBackoff`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `max_restarts` restarts within `within`; one more and the
/// supervisor escalates (stops its children in reverse order, then itself).
///
/// The default is OTP's: 1 restart in 5 seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts tolerated inside the window.
    pub max_restarts: u32,
    /// The sliding window.
    pub within: Duration,
}

impl Intensity {
    /// `max_restarts` restarts within `within`.
    pub const fn new(max_restarts: u32, within: Duration) -> Self {
        Self {
            max_restarts,
            within,
        }
    }
}

impl Default for Intensity {
    fn default() -> Self {
        Self::new(1, Duration::from_secs(5))
    }
}

/// The timestamps of recent restarts, pruned to the intensity window.
#[derive(Clone, Debug, Default)]
pub struct RestartHistory {
    recent: VecDeque<Instant>,
}

impl RestartHistory {
    /// Restarts recorded within the window that ends at `now`.
    pub fn within(&self, window: Duration, now: Instant) -> usize {
        self.recent
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= window)
            .count()
    }

    /// All recorded restart instants still inside the last window, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Instant> {
        self.recent.iter()
    }

    /// Records a restart at `now` and reports whether `intensity` still allows it.
    pub(crate) fn record(&mut self, intensity: Intensity, now: Instant) -> bool {
        while let Some(oldest) = self.recent.front() {
            if now.saturating_duration_since(*oldest) > intensity.within {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        self.recent.len() <= intensity.max_restarts as usize
    }
}

/// Exponential backoff between restarts of the same child.
///
/// The n-th consecutive restart (n from 0) waits
/// `min(max, min_delay * factor^n) * (1 + jitter * r)` with `r` uniform in
/// `[0, 1)`. A child that ran for at least `reset_after` since its last start
/// counts as stable: its next failure starts again at `min_delay`.
///
/// [`Backoff::none`] (the default) restarts at once, as OTP does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
    reset_after: Duration,
}

impl Backoff {
    /// Restart immediately.
    pub const fn none() -> Self {
        Self {
            min: Duration::ZERO,
            max: Duration::ZERO,
            factor: 1.0,
            jitter: 0.0,
            reset_after: Duration::from_secs(30),
        }
    }

    /// Doubling delays from `min` up to `max`, no jitter, reset after 30 s
    /// of stable running.
    pub const fn exponential(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            factor: 2.0,
            jitter: 0.0,
            reset_after: Duration::from_secs(30),
        }
    }

    /// Multiplier between consecutive delays (clamped to at least 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Random extra delay, as a fraction of the delay (0.2 = up to +20 %);
    /// clamped to `[0, 1]`.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// How long a child must run before its failure count resets.
    pub fn reset_after(mut self, stable: Duration) -> Self {
        self.reset_after = stable;
        self
    }

    /// The stable period after which the failure count resets.
    pub fn stable_after(&self) -> Duration {
        self.reset_after
    }

    /// The delay before the restart that follows `consecutive` earlier
    /// consecutive restarts, before jitter.
    pub fn base_delay(&self, consecutive: u32) -> Duration {
        if self.min.is_zero() {
            return Duration::ZERO;
        }
        let exp = self.factor.powi(consecutive.min(64) as i32);
        let secs = (self.min.as_secs_f64() * exp).min(self.max.max(self.min).as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(self.max)
    }

    /// The delay with jitter drawn from `rng`.
    pub fn delay(&self, consecutive: u32, rng: &mut fastrand::Rng) -> Duration {
        let base = self.base_delay(consecutive);
        if self.jitter == 0.0 || base.is_zero() {
            return base;
        }
        Duration::try_from_secs_f64(base.as_secs_f64() * (1.0 + self.jitter * rng.f64()))
            .unwrap_or(base)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_schedule_doubles_and_caps() {
        let b = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(160));
        let got: Vec<u128> = (0..7).map(|n| b.base_delay(n).as_millis()).collect();
        assert_eq!(got, [10, 20, 40, 80, 160, 160, 160]);
    }

    #[test]
    fn jitter_stays_within_fraction() {
        let b =
            Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.2);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let d = b.delay(0, &mut rng);
            assert!(
                d >= Duration::from_millis(100) && d < Duration::from_millis(120),
                "{d:?}"
            );
        }
    }

    #[test]
    fn none_is_immediate() {
        assert_eq!(
            Backoff::none().delay(5, &mut fastrand::Rng::new()),
            Duration::ZERO
        );
    }

    #[test]
    fn history_enforces_window() {
        let mut h = RestartHistory::default();
        let i = Intensity::new(2, Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(h.record(i, t0));
        assert!(h.record(i, t0 + Duration::from_secs(1)));
        assert!(!h.record(i, t0 + Duration::from_secs(2)));
        // the first two fall out of the window
        let mut h = RestartHistory::default();
        assert!(h.record(i, t0));
        assert!(h.record(i, t0 + Duration::from_secs(1)));
        assert!(h.record(i, t0 + Duration::from_secs(7)));
    }
}
