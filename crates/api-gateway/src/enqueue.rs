//! The enqueue that follows a commit, on the queue of the job's kind
//! (`jobs::queue_of`: every queue of the catalogue is opened once), bounded so
//! that a Redis outage costs a
//! request no latency: each enqueue has a deadline (`API_ENQUEUE_TIMEOUT`), and
//! a circuit breaker stops trying for `API_ENQUEUE_BREAKER_COOLDOWN` after
//! `API_ENQUEUE_BREAKER_FAILURES` consecutive failures or timeouts. While it is
//! open, requests skip the enqueue: their rows stay pending and the workers'
//! reconcilers enqueue them with the same keys (docs/design.md, "A row and its job
//! never disagree for long"). After the cool-down one request probes Redis; a
//! success closes the breaker, a failure opens it for another cool-down.
//!
//! The state shows in `/readyz` (`enqueue`) and in the metrics
//! `api_enqueue_total{queue, outcome}` (`ok`, `failed`, `timeout`, `skipped`),
//! `api_enqueue_breaker_open` (0 or 1) and `api_enqueue_breaker_opened_total`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use queue_core::{Broker, Enqueued, NewJob, Producer, Queue};
use tracing::{info, warn};

use crate::config::EnqueueConfig;

/// Why an enqueue did not happen (or may not have).
#[derive(Debug)]
pub enum EnqueueError {
    /// The breaker is open: nothing was sent to Redis.
    CircuitOpen,
    /// No answer within the deadline; the job may exist (its key is unique
    /// until settled, so the reconciler never adds a second one).
    TimedOut(Duration),
    /// Redis answered with an error or could not be reached.
    Failed(queue_core::Error),
    /// No queue of the catalogue takes the job's kind, or the jobs of one
    /// `enqueue_many` are of different queues: a bug of ours, not Redis's, so
    /// the breaker does not count it. Nothing was sent.
    Unroutable(String),
}

impl fmt::Display for EnqueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnqueueError::CircuitOpen => f.write_str(
                "skipped: the enqueue circuit is open after consecutive failures \
                 (API_ENQUEUE_BREAKER_FAILURES); Redis is tried again after API_ENQUEUE_BREAKER_COOLDOWN",
            ),
            EnqueueError::TimedOut(limit) => write!(
                f,
                "no answer from Redis within {} (API_ENQUEUE_TIMEOUT)",
                humantime::format_duration(*limit)
            ),
            EnqueueError::Failed(e) => write!(f, "{e}"),
            EnqueueError::Unroutable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for EnqueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnqueueError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Enqueues through the breaker, each attempt within the deadline, each job on
/// the queue of its kind. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Enqueuer {
    producer: Producer,
    /// Every queue of the catalogue, by name.
    queues: Arc<HashMap<&'static str, Queue>>,
    timeout: Duration,
    breaker: Arc<Breaker>,
}

impl Enqueuer {
    /// Opens every queue of `jobs::CATALOGUE` on `broker` (names only: nothing
    /// is sent to Redis).
    pub fn new(broker: Broker, config: EnqueueConfig) -> queue_core::Result<Self> {
        let queues = jobs::CATALOGUE
            .iter()
            .map(|spec| Ok((spec.name, spec.open(&broker)?)))
            .collect::<queue_core::Result<_>>()?;
        Ok(Self {
            producer: Producer::new(broker),
            queues: Arc::new(queues),
            timeout: config.timeout,
            breaker: Arc::new(Breaker::new(
                config.breaker_failures.get(),
                config.breaker_cooldown,
            )),
        })
    }

    /// Enqueues one job on its kind's queue, or says why not within
    /// `API_ENQUEUE_TIMEOUT`.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, EnqueueError> {
        let queue = self.queue_of(&job)?;
        self.attempt(queue, self.producer.enqueue(queue, job)).await
    }

    /// Enqueues many jobs of one queue in one bounded attempt (part of them may
    /// be enqueued when it fails; their keys keep the reconciler from adding
    /// them twice).
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, EnqueueError> {
        let Some(first) = jobs.first() else {
            return Ok(Vec::new());
        };
        let queue = self.queue_of(first)?;
        let spec = jobs::queue_of(first.kind());
        if let Some(other) = jobs.iter().find(|job| jobs::queue_of(job.kind()) != spec) {
            return Err(EnqueueError::Unroutable(format!(
                "one enqueue takes the jobs of one queue, not {:?} with {:?}",
                first.kind(),
                other.kind()
            )));
        }
        self.attempt(queue, self.producer.enqueue_many(queue, jobs))
            .await
    }

    /// The queue of the job's kind.
    fn queue_of(&self, job: &NewJob) -> Result<&Queue, EnqueueError> {
        jobs::queue_of(job.kind())
            .and_then(|spec| self.queues.get(spec.name))
            .ok_or_else(|| {
                EnqueueError::Unroutable(format!(
                    "no queue of the catalogue takes jobs of kind {:?}",
                    job.kind()
                ))
            })
    }

    /// The breaker, for `/readyz`.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    async fn attempt<T>(
        &self,
        queue: &Queue,
        enqueue: impl Future<Output = queue_core::Result<T>>,
    ) -> Result<T, EnqueueError> {
        let outcome = |o: &'static str| {
            metrics::counter!("api_enqueue_total", "queue" => queue.name().to_owned(), "outcome" => o)
                .increment(1);
        };
        let Some(attempt) = self.breaker.admit() else {
            outcome("skipped");
            return Err(EnqueueError::CircuitOpen);
        };
        match tokio::time::timeout(self.timeout, enqueue).await {
            Ok(Ok(done)) => {
                attempt.succeeded();
                outcome("ok");
                Ok(done)
            }
            Ok(Err(e)) => {
                attempt.failed(&e.to_string());
                outcome("failed");
                Err(EnqueueError::Failed(e))
            }
            Err(_) => {
                let e = EnqueueError::TimedOut(self.timeout);
                attempt.failed(&e.to_string());
                outcome("timeout");
                Err(e)
            }
        }
    }
}

/// Opens after `failures_to_open` consecutive failures, lets one probe through
/// after `cooldown`, closes on a success.
#[derive(Debug)]
pub struct Breaker {
    failures_to_open: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    /// Set while open: when the next probe may go.
    open_until: Option<Instant>,
    /// A probe is under way (half-open): the others still skip.
    probing: bool,
    last_error: Option<String>,
}

/// Where the breaker stands, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerState {
    /// Enqueues go through.
    Closed,
    /// Enqueues are skipped; a probe goes after `retry_in`.
    Open {
        consecutive_failures: u32,
        retry_in: Duration,
        last_error: String,
    },
    /// The cool-down is over: the next enqueue probes Redis (or one is).
    HalfOpen { last_error: String },
}

impl Breaker {
    pub fn new(failures_to_open: u32, cooldown: Duration) -> Self {
        metrics::gauge!("api_enqueue_breaker_open").set(0.0);
        Self {
            failures_to_open: failures_to_open.max(1),
            cooldown,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it leaves a consistent state (plain fields).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An attempt when one may go now; None while open (or while another
    /// request probes).
    pub fn admit(&self) -> Option<Attempt<'_>> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<Attempt<'_>> {
        let mut st = self.state();
        match st.open_until {
            None => Some(Attempt {
                breaker: self,
                settled: false,
            }),
            Some(until) if now < until || st.probing => None,
            Some(_) => {
                st.probing = true;
                Some(Attempt {
                    breaker: self,
                    settled: false,
                })
            }
        }
    }

    /// Where it stands now.
    pub fn status(&self) -> BreakerState {
        self.status_at(Instant::now())
    }

    fn status_at(&self, now: Instant) -> BreakerState {
        let st = self.state();
        let last_error = || st.last_error.clone().unwrap_or_default();
        match st.open_until {
            None => BreakerState::Closed,
            Some(until) => {
                let retry_in = until.saturating_duration_since(now);
                if retry_in.is_zero() || st.probing {
                    BreakerState::HalfOpen {
                        last_error: last_error(),
                    }
                } else {
                    BreakerState::Open {
                        consecutive_failures: st.consecutive_failures,
                        retry_in,
                        last_error: last_error(),
                    }
                }
            }
        }
    }

    fn succeeded(&self) {
        let mut st = self.state();
        if st.open_until.is_some() {
            info!("enqueue circuit closed: Redis answers again");
            metrics::gauge!("api_enqueue_breaker_open").set(0.0);
        }
        *st = State::default();
    }

    fn failed(&self, error: &str) {
        self.failed_at(Instant::now(), error);
    }

    fn failed_at(&self, now: Instant, error: &str) {
        let mut st = self.state();
        st.consecutive_failures = st.consecutive_failures.saturating_add(1);
        st.last_error = Some(error.to_owned());
        let was_open = st.open_until.is_some();
        if was_open || st.consecutive_failures >= self.failures_to_open {
            st.open_until = Some(now + self.cooldown);
            st.probing = false;
            if !was_open {
                warn!(
                    enqueue.consecutive_failures = st.consecutive_failures,
                    error,
                    cooldown = %humantime::format_duration(self.cooldown),
                    "enqueue circuit open: requests skip the enqueue and the reconcilers carry their rows"
                );
                metrics::gauge!("api_enqueue_breaker_open").set(1.0);
                metrics::counter!("api_enqueue_breaker_opened_total").increment(1);
            }
        }
    }
}

/// One admitted enqueue: reports its outcome to the breaker; dropped without
/// one (its request went away), it counts as a failure, so a probe never holds
/// the breaker half-open for good.
#[derive(Debug)]
pub struct Attempt<'a> {
    breaker: &'a Breaker,
    settled: bool,
}

impl Attempt<'_> {
    pub fn succeeded(mut self) {
        self.settled = true;
        self.breaker.succeeded();
    }

    pub fn failed(mut self, error: &str) {
        self.settled = true;
        self.breaker.failed(error);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker
                .failed("the enqueue was abandoned before it answered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A failed attempt at `now` (the clock is the test's, not the wall's).
    fn fail_at(b: &Breaker, now: Instant, error: &str) {
        let mut attempt = b.admit_at(now).expect("admitted");
        attempt.settled = true;
        b.failed_at(now, error);
    }

    #[test]
    fn the_breaker_opens_after_the_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breaker::new(3, COOLDOWN);
        let t = Instant::now();
        fail_at(&b, t, "down");
        fail_at(&b, t, "down");
        b.admit_at(t).expect("closed").succeeded();
        fail_at(&b, t, "down");
        fail_at(&b, t, "down");
        assert_eq!(
            b.status_at(t),
            BreakerState::Closed,
            "two in a row, not three"
        );
        fail_at(&b, t, "connection refused");
        assert!(b.admit_at(t + ms(1)).is_none(), "open: skipped");
        assert_eq!(
            b.status_at(t + ms(1_000)),
            BreakerState::Open {
                consecutive_failures: 3,
                retry_in: ms(4_000),
                last_error: "connection refused".into(),
            }
        );
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_and_its_outcome_closes_or_reopens_the_breaker() {
        let b = Breaker::new(1, COOLDOWN);
        let t = Instant::now();
        fail_at(&b, t, "down");
        assert!(b.admit_at(t + ms(4_999)).is_none(), "still cooling down");
        let probe = b.admit_at(t + COOLDOWN).expect("the probe goes");
        assert!(b.admit_at(t + COOLDOWN).is_none(), "one probe at a time");
        assert!(matches!(
            b.status_at(t + COOLDOWN),
            BreakerState::HalfOpen { .. }
        ));
        let mut probe = probe;
        probe.settled = true;
        b.failed_at(t + COOLDOWN, "still down");
        assert!(
            b.admit_at(t + COOLDOWN + ms(1)).is_none(),
            "a failed probe opens it again for a whole cooldown"
        );
        b.admit_at(t + COOLDOWN * 2)
            .expect("the next probe")
            .succeeded();
        assert_eq!(b.status(), BreakerState::Closed);
        assert!(b.admit().is_some());
    }

    #[test]
    fn a_probe_dropped_without_an_outcome_does_not_hold_the_breaker_half_open() {
        let b = Breaker::new(1, COOLDOWN);
        let t = Instant::now();
        fail_at(&b, t, "down");
        drop(b.admit_at(t + COOLDOWN).expect("the probe"));
        // Dropped now (the wall clock, after t): open for a cooldown from now.
        assert!(matches!(b.status(), BreakerState::Open { .. }));
        assert!(
            b.admit_at(Instant::now() + COOLDOWN).is_some(),
            "another probe goes after the cooldown"
        );
    }
}
