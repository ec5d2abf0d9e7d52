//! What the runner must never do, whatever the timing: run more than its
//! concurrency, crash on a surplus of entries, start a job while paused, run one
//! entry twice in one process, or keep claiming an entry it will never finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use queue_core::testing::{Runs, TestRedis, eventually, fast_worker_config, holds_for, ms};
use queue_core::{Job, JobError, NewJob, Priority, WorkerConfig};

/// Counts jobs running at once and the most ever seen.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl Gauge {
    fn handler(
        &self,
    ) -> impl Fn(Job) -> std::pin::Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>
    + Send
    + Sync
    + 'static {
        let gauge = self.clone();
        move |_job: Job| {
            let gauge = gauge.clone();
            Box::pin(async move {
                let running = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
                gauge.max.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(ms(10)).await;
                gauge.now.fetch_sub(1, Ordering::SeqCst);
                gauge.done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }
}

#[tokio::test]
async fn entries_arriving_on_several_lanes_during_a_blocking_read_never_exceed_the_concurrency() {
    let env = TestRedis::new().await;
    let q = env.priority_queue("lanes-surplus");
    let gauge = Gauge::default();
    let config = WorkerConfig {
        concurrency: 1.try_into().expect("nonzero"),
        // The worker spends nearly all its time blocked in XREADGROUP on all lanes.
        block: Duration::from_secs(2),
        reclaim_interval: Duration::from_secs(2),
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, gauge.handler());
    let streams: Vec<String> = [Priority::High, Priority::Normal, Priority::Low]
        .iter()
        .map(|p| {
            let suffix = match p {
                Priority::Normal => None,
                other => Some(other.as_str()),
            };
            q.keys().stream(suffix)
        })
        .collect();
    // Redis creates a consumer on its first delivery: one job per lane first.
    for priority in [Priority::High, Priority::Normal, Priority::Low] {
        env.enqueue(&q, NewJob::new("t.warmup", "x").priority(priority))
            .await;
    }
    eventually("the warm-up jobs ran", async || {
        (gauge.done.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    // Pairs of entries land on the high and the low lane in one transaction,
    // at random moments: some arrive while the worker is between its
    // non-blocking read (which found nothing) and its blocking read over all
    // lanes, which then returns an entry from each lane, twice its COUNT of 1.
    const PAIRS: usize = 60;
    let mut conn = env.broker.connection().await.expect("redis");
    for round in 0..PAIRS {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for stream in [&streams[0], &streams[2]] {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg(queue_core::fields::ENVELOPE)
                .arg(raw_envelope(&format!("t.pair{round}")));
        }
        let _: Vec<String> = pipe.query_async(&mut conn).await.expect("MULTI XADD");
        // Let the worker drain now and then, so that it reads, finds nothing and blocks.
        if round % 3 == 0 {
            let done = 3 + 2 * (round + 1);
            eventually("the pairs so far ran", async || {
                (gauge.done.load(Ordering::SeqCst) >= done - 1).then_some(())
            })
            .await;
        }
    }
    drop(conn);
    eventually("every job ran", async || {
        (gauge.done.load(Ordering::SeqCst) == 3 + 2 * PAIRS).then_some(())
    })
    .await;
    assert_eq!(
        gauge.max.load(Ordering::SeqCst),
        1,
        "never more than the concurrency"
    );
    worker.stop().await;
    env.finish().await;
}

/// An encoded envelope of `kind`, as a producer in another language would write it.
fn raw_envelope(kind: &str) -> Vec<u8> {
    use prost::Message;
    queue_core::Envelope {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind.to_owned(),
        attempt: 1,
        ..Default::default()
    }
    .encode_to_vec()
}

/// A value whose drop panics: the handler's future carries it, so the panic
/// happens outside the handler's own poll (where the runner catches panics).
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("dropped the handler's future");
    }
}

#[tokio::test]
async fn an_entry_whose_task_died_is_no_longer_claimed_and_another_delivery_finishes_it() {
    let env = TestRedis::new().await;
    let q = env.queue("task-died");
    let id = env
        .enqueue(&q, NewJob::new("t.dies", "x"))
        .await
        .id()
        .to_owned();
    let runs = Runs::default();
    let handler = {
        let runs = runs.clone();
        move |job: Job| {
            let run = runs.record(&job);
            async move {
                if run.deliveries == 1 {
                    // Outlives the timeout: the runner drops the future, which panics.
                    let _bomb = PanicOnDrop;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok::<(), JobError>(())
            }
        }
    };
    let config = WorkerConfig {
        job_timeout: ms(100),
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, handler);
    let stats = env
        .stats_until(&q, "a later delivery completes the job", |s| {
            s.completed == 1
        })
        .await;
    assert!(stats.reclaimed >= 1, "{stats:?}");
    assert_eq!(runs.of(&id).len(), 2);
    worker.cancel();
    env.finish().await;
}

#[tokio::test]
async fn a_pause_that_begins_during_a_blocking_read_also_holds_reclaimed_jobs() {
    let env = TestRedis::new().await;
    let q = env.queue("pause-reclaim");
    let runs = Runs::default();
    let config = WorkerConfig {
        // Long blocking reads, each followed by a reclaim.
        block: Duration::from_secs(1),
        reclaim_interval: Duration::from_secs(1),
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, runs.recorder());
    // Redis creates a consumer on its first delivery: one job first.
    env.enqueue(&q, NewJob::new("t.warmup", "x")).await;
    env.stats_until(&q, "the warm-up job ran", |s| s.completed == 1)
        .await;
    env.until_blocked(&q, &worker.consumer).await;
    // While it blocks: a job read by a consumer that dies at once (in one
    // transaction, so the blocked worker cannot take it), then the pause. The
    // orphan is due (400 ms) before the next reclaim (1 s).
    let stream = q.keys().stream(None);
    let group = WorkerConfig::default().group;
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg(queue_core::fields::ENVELOPE)
        .arg(raw_envelope("t.orphan"))
        .cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&group)
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">");
    let mut conn = env.broker.connection().await.expect("redis");
    let _: redis::Value = pipe.query_async(&mut conn).await.expect("MULTI");
    drop(conn);
    env.admin.pause(&q).await.expect("pause");
    holds_for(
        "the orphan does not start while paused",
        ms(1500),
        async || runs.len() == 1,
    )
    .await;
    env.admin.resume(&q).await.expect("resume");
    env.stats_until(&q, "the orphan runs once resumed", |s| s.completed == 2)
        .await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_worker_never_reclaims_its_own_running_entry_into_a_second_run() {
    let env = TestRedis::new().await;
    let q = env.queue("own-entry");
    let entry_id = env.enqueue_entry(&q, NewJob::new("t.long", "x")).await;
    let runs = Runs::default();
    let release = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let (runs, release) = (runs.clone(), release.clone());
        move |job: Job| {
            runs.record(&job);
            let release = release.clone();
            async move {
                release.notified().await;
                Ok::<(), JobError>(())
            }
        }
    };
    let config = WorkerConfig {
        // Each claim by the worker's own reclaim counts a delivery; this test
        // forces many, and is about runs, not about poison entries.
        max_deliveries: 1000,
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, handler);
    eventually("the job runs", async || (runs.len() == 1).then_some(())).await;
    // Make the running entry look abandoned again and again (a stalled heartbeat):
    // the worker's own reclaim finds it, and must not start it a second time.
    let stream = q.keys().stream(None);
    let group = WorkerConfig::default().group;
    holds_for(
        "one run of the entry in this process",
        ms(500),
        async || {
            let _: redis::Value = env
                .cmd(
                    redis::cmd("XCLAIM")
                        .arg(&stream)
                        .arg(&group)
                        .arg(&worker.consumer)
                        .arg(0)
                        .arg(&entry_id)
                        .arg("IDLE")
                        .arg(60_000)
                        .arg("JUSTID"),
                )
                .await;
            runs.len() == 1
        },
    )
    .await;
    release.notify_waiters();
    env.stats_until(&q, "the job completes", |s| s.completed == 1)
        .await;
    assert_eq!(runs.len(), 1);
    worker.stop().await;
    env.finish().await;
}
