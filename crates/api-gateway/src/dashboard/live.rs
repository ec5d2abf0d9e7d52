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
use queue_core::admin::HISTORY_MAX_MINUTES;
use queue_core::{Admin, QueueStats};
use serde::Serialize;
use tokio::sync::watch;

use super::charts::{self, Metric, Range};
use super::session::Session;
use crate::AppState;

pub(super) const PATH: &str = "/dashboard/live";

/// How often the sampler reads Redis while someone listens.
const INTERVAL: Duration = Duration::from_secs(1);
/// How often it reads the queues' histories and draws their charts again:
/// their bars are minutes.
const CHARTS_EVERY: u32 = 15;
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

/// What every listener receives, serialized once: the counts, and the charts
/// (refreshed less often; a listener gets them again only when they change).
#[derive(Debug)]
pub(super) struct Snapshot {
    pub counts: Arc<String>,
    pub charts: Option<Arc<String>>,
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
    let mut charts: Option<Arc<String>> = None;
    for round in 0u32.. {
        tick.tick().await;
        if inner.latest.receiver_count() == 0 {
            inner.running.store(false, Ordering::SeqCst);
            // A listener that came meanwhile saw `running` and started nothing.
            if inner.latest.receiver_count() == 0 || inner.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        let counts = Arc::new(counts_json(&admin).await);
        if round % CHARTS_EVERY == 0 {
            match charts_json(&admin).await {
                Ok(json) if charts.as_deref() != Some(&json) => charts = Some(Arc::new(json)),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard sampler could not read the histories")
                }
            }
        }
        inner.latest.send_if_modified(|latest| {
            // Unchanged counts keep their Arc, so listeners are not sent them again.
            let counts = match latest {
                Some(s) if *s.counts == *counts => s.counts.clone(),
                _ => counts,
            };
            let same_charts = |s: &Snapshot| {
                s.charts.as_ref().map(Arc::as_ptr) == charts.as_ref().map(Arc::as_ptr)
            };
            if latest
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(&s.counts, &counts) && same_charts(s))
            {
                return false;
            }
            *latest = Some(Arc::new(Snapshot {
                counts,
                charts: charts.clone(),
            }));
            true
        });
    }
}

async fn counts_json(admin: &Admin) -> String {
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
    serde_json::to_string(&body).expect("a snapshot serializes")
}

/// Every queue's charts, by `charts::key`.
async fn charts_json(admin: &Admin) -> queue_core::Result<String> {
    let mut all = BTreeMap::new();
    for queue in admin.queues().await? {
        let history = admin.history(&queue, HISTORY_MAX_MINUTES).await?;
        for range in Range::ALL {
            for metric in Metric::ALL {
                all.insert(
                    charts::key(queue.name(), range, metric),
                    charts::svg(&history, range, metric).into_string(),
                );
            }
        }
    }
    Ok(serde_json::to_string(&all).expect("strings serialize"))
}

/// `GET /dashboard/live`: `stats` events, each the whole snapshot as JSON.
pub(super) async fn stream(
    _session: Session,
    State(state): State<AppState>,
    Extension(live): Extension<Live>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = live.subscribe(&state.admin);
    let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
    // What this listener was sent last, so it gets only what changed.
    let sent: (Option<Arc<String>>, Option<Arc<String>>) = (None, None);
    let events = futures::stream::unfold((rx, sent), move |(mut rx, mut sent)| async move {
        loop {
            let latest = rx.borrow_and_update().clone();
            if let Some(event) = pending_event(&mut sent, latest.as_deref()) {
                return Some((Ok(event), (rx, sent)));
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // Lifetime over, or the sampler is gone with the router.
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The next event for a listener that was sent `sent`: the counts, then the
/// charts, whichever changed since.
fn pending_event(
    sent: &mut (Option<Arc<String>>, Option<Arc<String>>),
    latest: Option<&Snapshot>,
) -> Option<Event> {
    let latest = latest?;
    let same = |a: &Option<Arc<String>>, b: Option<&Arc<String>>| {
        a.as_ref().map(Arc::as_ptr) == b.map(Arc::as_ptr)
    };
    if !same(&sent.0, Some(&latest.counts)) {
        sent.0 = Some(latest.counts.clone());
        return Some(Event::default().event("stats").data(latest.counts.as_str()));
    }
    if let Some(charts) = &latest.charts
        && !same(&sent.1, Some(charts))
    {
        sent.1 = Some(charts.clone());
        return Some(Event::default().event("charts").data(charts.as_str()));
    }
    None
}
