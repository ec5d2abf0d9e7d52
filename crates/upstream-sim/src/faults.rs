//! The knobs every simulated route shares (latency, error rate, hang, fail the
//! next N) and how one request rolls them.
//!
//! Knobs live behind a `std::sync::Mutex` that is never held across an
//! `.await`: a request copies what it needs, then sleeps. Every sleep also ends
//! when the simulator stops, so a hung request never outlives its server.

use std::sync::Mutex;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::rng::SplitMix64;

/// How long a hung request waits: longer than any sane client timeout. It ends
/// sooner when the simulator stops.
pub const HANG_FOR: Duration = Duration::from_secs(600);

/// The fault knobs of one simulator. In JSON: `latency_ms`, `error_rate`,
/// `hang`, `fail_next`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added before every answer.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Share of requests (0.0 to 1.0) answered with a server error.
    pub error_rate: f64,
    /// Accept requests and never answer (until [`HANG_FOR`] or the simulator stops).
    pub hang: bool,
    /// The next N requests fail with a server error, whatever the error rate.
    pub fail_next: u32,
}

impl Faults {
    /// Checks the rules a knob must follow; the error names the knob.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "error_rate: {} must be between 0.0 and 1.0",
                self.error_rate
            ));
        }
        Ok(())
    }
}

/// What a request does after its latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Roll {
    Answer,
    Fail,
    Hang,
}

/// Rolls the dice for one request, consuming one `fail_next` if any is left.
pub(crate) fn roll(faults: &mut Faults, rng: &Mutex<SplitMix64>) -> Roll {
    if faults.hang {
        return Roll::Hang;
    }
    if faults.fail_next > 0 {
        faults.fail_next -= 1;
        return Roll::Fail;
    }
    if faults.error_rate > 0.0 && lock(rng).chance(faults.error_rate) {
        return Roll::Fail;
    }
    Roll::Answer
}

/// Sleeps `d`, or less when `shutdown` fires. True when the full time passed.
pub(crate) async fn sleep(d: Duration, shutdown: &CancellationToken) -> bool {
    if d.is_zero() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = shutdown.cancelled() => false,
    }
}

/// Locks a mutex, recovering the data if a panicking holder poisoned it: every
/// critical section here leaves the data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Applies a JSON patch of knobs onto `current`: only the keys present change;
/// a key `current` does not have is an error naming it, so a typo never passes
/// silently.
pub(crate) fn patch<T: Serialize + DeserializeOwned>(
    current: &T,
    patch: serde_json::Value,
) -> Result<T, String> {
    let mut merged = serde_json::to_value(current).map_err(|e| e.to_string())?;
    let (Some(target), serde_json::Value::Object(changes)) = (merged.as_object_mut(), patch) else {
        return Err("knobs must be a JSON object".to_owned());
    };
    for (key, value) in changes {
        if !target.contains_key(&key) {
            let known: Vec<&str> = target.keys().map(String::as_str).collect();
            return Err(format!("{key}: no such knob (known: {})", known.join(", ")));
        }
        target.insert(key, value);
    }
    serde_json::from_value(merged).map_err(|e| e.to_string())
}

/// `Duration` as whole milliseconds in JSON.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Adds the four fault setters to a control whose knobs have a `faults` field.
macro_rules! fault_setters {
    ($control:ty) => {
        impl $control {
            /// Adds `latency` before every answer.
            pub fn set_latency(&self, latency: std::time::Duration) {
                self.update_knobs(|k| k.faults.latency = latency);
            }

            /// Answers a share of requests (0.0 to 1.0) with a server error.
            pub fn set_error_rate(&self, rate: f64) {
                self.update_knobs(|k| k.faults.error_rate = rate.clamp(0.0, 1.0));
            }

            /// Accepts requests and never answers them (until the simulator stops).
            pub fn set_hang(&self, hang: bool) {
                self.update_knobs(|k| k.faults.hang = hang);
            }

            /// Fails the next `n` requests with a server error.
            pub fn fail_next(&self, n: u32) {
                self.update_knobs(|k| k.faults.fail_next = n);
            }
        }
    };
}
pub(crate) use fault_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_fails_exactly_that_many_requests() {
        let rng = Mutex::new(SplitMix64::new(1));
        let mut faults = Faults {
            fail_next: 2,
            ..Faults::default()
        };
        let rolls: Vec<Roll> = (0..4).map(|_| roll(&mut faults, &rng)).collect();
        assert_eq!(rolls, [Roll::Fail, Roll::Fail, Roll::Answer, Roll::Answer]);
    }

    #[test]
    fn an_error_rate_of_one_fails_everything_and_zero_nothing() {
        let rng = Mutex::new(SplitMix64::new(1));
        let mut always = Faults {
            error_rate: 1.0,
            ..Faults::default()
        };
        let mut never = Faults::default();
        for _ in 0..100 {
            assert_eq!(roll(&mut always, &rng), Roll::Fail);
            assert_eq!(roll(&mut never, &rng), Roll::Answer);
        }
    }

    #[test]
    fn a_patch_changes_only_the_keys_it_names_and_rejects_unknown_ones() {
        let current = Faults {
            error_rate: 0.5,
            ..Faults::default()
        };
        let patched = patch(&current, serde_json::json!({"latency_ms": 250})).expect("valid");
        assert_eq!(patched.latency, Duration::from_millis(250));
        assert_eq!(patched.error_rate, 0.5);
        let err = patch(&current, serde_json::json!({"latency": 1})).expect_err("typo");
        assert!(err.starts_with("latency: no such knob"), "{err}");
    }
}
