//! Live updates: one sampler per gateway process reads every queue's counts at
//! most once per [`INTERVAL`] while at least one browser listens, and every
//! open page gets the same snapshot over server-sent events. Ten browsers cost
//! Redis what one costs; none costs nothing (the sampler stops).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use queue_core::{Admin, QueueStats};
use serde::Serialize;
use tokio::sync::watch;

use super::session::Session;
use crate::AppState;

pub(super) const PATH: &str = "/dashboard/live";

/// How often the sampler reads Redis while someone listens.
const INTERVAL: Duration = Duration::from_secs(1);
/// A stream ends after this, and the browser reconnects with its cookie: a
/// session that expired or whose key was revoked stops getting updates.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);

/// One queue's counts as the pages show them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(super) struct QueueLive {
    pub waiting: u64,
    pub active: u64,
    pub delayed: u64,
    pub failed: u64,
    pub completed: u64,
    pub lag: String,
    pub oldest_waiting: String,
    pub paused: String,
    pub consumers: u64,
}

impl From<&QueueStats> for QueueLive {
    fn from(s: &QueueStats) -> Self {
        Self {
            waiting: s.waiting,
            active: s.active,
            delayed: s.delayed,
            failed: s.failed,
            completed: s.completed,
            lag: s.lag.map_or_else(|| "–".into(), |l| l.to_string()),
            oldest_waiting: s
                .oldest_waiting_age_ms
                .map_or_else(|| "–".into(), super::format::age_ms),
            paused: if s.paused { "paused" } else { "running" }.into(),
            consumers: s.consumers,
        }
    }
}

/// What every listener receives, serialized once.
#[derive(Debug)]
pub(super) struct Snapshot {
    pub json: String,
}

#[derive(Debug, Serialize)]
struct SnapshotBody {
    queues: BTreeMap<String, QueueLive>,
    /// Set when Redis could not be read; the counts shown stay as they were.
    error: Option<String>,
}

/// The process's sampler, shared by every page through an `Extension`.
#[derive(Debug, Clone)]
pub(super) struct Live(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    latest: watch::Sender<Option<Arc<Snapshot>>>,
    running: AtomicBool,
}

impl Default for Live {
    fn default() -> Self {
        Self(Arc::new(Inner {
            latest: watch::Sender::new(None),
            running: AtomicBool::new(false),
        }))
    }
}

impl Live {
    /// The latest snapshot and its successors; starts the sampler if it sleeps.
    pub fn subscribe(&self, admin: &Admin) -> watch::Receiver<Option<Arc<Snapshot>>> {
        let rx = self.0.latest.subscribe();
        // The sampler, when it stops, clears `running` before it looks for
        // listeners again, so either it sees this receiver or we see it stopped.
        if !self.0.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(sample(self.0.clone(), admin.clone()));
        }
        rx
    }
}

async fn sample(inner: Arc<Inner>, admin: Admin) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if inner.latest.receiver_count() == 0 {
            inner.running.store(false, Ordering::SeqCst);
            // A listener that came meanwhile saw `running` and started nothing.
            if inner.latest.receiver_count() == 0 || inner.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        let body = match admin.stats_all().await {
            Ok(stats) => SnapshotBody {
                queues: stats
                    .iter()
                    .map(|s| (s.name.clone(), QueueLive::from(s)))
                    .collect(),
                error: None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "dashboard sampler could not read the queues");
                SnapshotBody {
                    queues: BTreeMap::new(),
                    error: Some("Redis is unreachable; the counts shown may be stale".into()),
                }
            }
        };
        let json = serde_json::to_string(&body).expect("a snapshot serializes");
        inner.latest.send_if_modified(|latest| {
            // Unchanged counts are not sent again.
            if latest.as_ref().is_some_and(|s| s.json == json) {
                return false;
            }
            *latest = Some(Arc::new(Snapshot { json }));
            true
        });
    }
}

/// `GET /dashboard/live`: `stats` events, each the whole snapshot as JSON.
pub(super) async fn stream(
    _session: Session,
    State(state): State<AppState>,
    Extension(live): Extension<Live>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = live.subscribe(&state.admin);
    rx.mark_changed();
    let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
    let events = futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // Lifetime over, or the sampler is gone with the router.
                Ok(Err(_)) | Err(_) => return None,
            }
            let latest = rx.borrow_and_update().clone();
            if let Some(snapshot) = latest {
                let event = Event::default().event("stats").data(&snapshot.json);
                return Some((Ok(event), rx));
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
