//! Retry delays: exponential with bounded jitter.

use std::time::Duration;

use rand::Rng;

/// `initial * factor^(attempt-1)`, capped at `max`, then multiplied by a random
/// factor in `[1 - jitter, 1 + jitter]` so that jobs failing together spread out.
///
/// With `factor >= 2` and `jitter <= 0.3` every delay is strictly longer than the
/// one before it, whatever the random draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f64,
    pub max: Duration,
    /// Fraction in `[0, 1)`.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(2),
            factor: 2.0,
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// Delay before the run that follows failed run number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let base = (self.initial.as_secs_f64() * self.factor.powi(exp)).min(self.max.as_secs_f64());
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64((base * (1.0 + spread)).max(0.0))
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.factor < 1.0 || !self.factor.is_finite() {
            return Err(format!("backoff factor must be >= 1, got {}", self.factor));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(format!(
                "backoff jitter must be in [0, 1), got {}",
                self.jitter
            ));
        }
        if self.max < self.initial {
            return Err("backoff max must be >= initial".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_the_jitter_band() {
        let b = Backoff::default();
        for _ in 0..200 {
            let d1 = b.delay(1).as_secs_f64();
            let d2 = b.delay(2).as_secs_f64();
            let d3 = b.delay(3).as_secs_f64();
            assert!((1.6..=2.4).contains(&d1), "{d1}");
            assert!((3.2..=4.8).contains(&d2), "{d2}");
            assert!((6.4..=9.6).contains(&d3), "{d3}");
            assert!(d1 < d2 && d2 < d3);
        }
    }

    #[test]
    fn delays_stop_growing_at_the_cap() {
        let b = Backoff {
            jitter: 0.0,
            max: Duration::from_secs(10),
            ..Backoff::default()
        };
        assert_eq!(b.delay(30), Duration::from_secs(10));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn nonsense_settings_are_rejected() {
        assert!(
            Backoff {
                factor: 0.5,
                ..Backoff::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Backoff {
                jitter: 1.5,
                ..Backoff::default()
            }
            .validate()
            .is_err()
        );
        assert!(Backoff::default().validate().is_ok());
    }
}
