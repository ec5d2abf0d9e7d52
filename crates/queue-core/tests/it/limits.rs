//! Global limits: a cap on the jobs running at once across replicas, a cap on
//! starts per window, and the share of a replica that died coming back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use queue_core::testing::{TestRedis, fast_worker_config, holds_for, ms};
use queue_core::{Job, JobError, NewJob, RateLimit, WorkerConfig};

/// Counts the runs in flight in this process and the most ever seen.
#[derive(Clone, Default)]
struct InFlight {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    first_attempts: Arc<AtomicUsize>,
    starts: Arc<std::sync::Mutex<Vec<Instant>>>,
}

impl InFlight {
    fn handler(
        &self,
        work: Duration,
    ) -> impl Fn(Job) -> futures::future::BoxFuture<'static, Result<(), JobError>> + Send + Sync + 'static
    {
        let me = self.clone();
        move |job: Job| {
            let me = me.clone();
            Box::pin(async move {
                me.starts.lock().expect("lock").push(Instant::now());
                if job.attempt() == 1 {
                    me.first_attempts.fetch_add(1, Ordering::SeqCst);
                }
                let n = me.now.fetch_add(1, Ordering::SeqCst) + 1;
                me.max.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(work).await;
                me.now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }
}

fn limited(global: usize) -> WorkerConfig {
    WorkerConfig {
        concurrency: 10.try_into().expect("nonzero"),
        global_concurrency: Some(global.try_into().expect("nonzero")),
        limit_poll: ms(10),
        ..fast_worker_config()
    }
}

#[tokio::test]
async fn three_workers_at_concurrency_ten_never_run_more_than_the_global_concurrency() {
    let env = TestRedis::new().await;
    let q = env.queue("limited");
    let seen = InFlight::default();
    let workers: Vec<_> = (0..3)
        .map(|_| env.spawn_worker(&q, limited(2), seen.handler(ms(15))))
        .collect();
    let jobs = (0..40).map(|n| NewJob::new("t.call", format!("call {n}")));
    env.producer.enqueue_many(&q, jobs).await.expect("enqueue");

    let s = env
        .stats_until(&q, "all forty jobs completed", |s| s.completed == 40)
        .await;
    assert_eq!(
        seen.max.load(Ordering::SeqCst),
        2,
        "at most 2, and 2 were used"
    );
    // Waiting for a slot costs no attempt.
    assert_eq!(seen.first_attempts.load(Ordering::SeqCst), 40);
    assert_eq!((s.retried, s.failed), (0, 0), "{s:#?}");
    // Every slot was given back.
    assert_eq!(env.zcard(&q.keys().limit_running()).await, 0);
    for w in workers {
        w.stop().await;
    }
    env.finish().await;
}

#[tokio::test]
async fn no_window_of_the_rate_limit_sees_more_starts_than_its_count() {
    let env = TestRedis::new().await;
    let q = env.queue("rated");
    let seen = InFlight::default();
    let config = WorkerConfig {
        rate_limit: Some("5/500ms".parse::<RateLimit>().expect("valid")),
        ..fast_worker_config()
    };
    let workers: Vec<_> = (0..2)
        .map(|_| env.spawn_worker(&q, config.clone(), seen.handler(Duration::ZERO)))
        .collect();
    let jobs = (0..20).map(|n| NewJob::new("t.call", format!("call {n}")));
    env.producer.enqueue_many(&q, jobs).await.expect("enqueue");

    env.stats_until(&q, "all twenty jobs completed", |s| s.completed == 20)
        .await;
    let mut starts = seen.starts.lock().expect("lock").clone();
    starts.sort();
    // The sixth start after any start comes a window later. Admission is timed
    // on the server; the slack covers the reply's way back to a loaded worker.
    for (i, later) in starts.iter().enumerate().skip(5) {
        let gap = *later - starts[i - 5];
        assert!(
            gap >= ms(350),
            "starts {} and {i} only {gap:?} apart",
            i - 5
        );
    }
    assert_eq!(seen.first_attempts.load(Ordering::SeqCst), 20);
    for w in workers {
        w.stop().await;
    }
    env.finish().await;
}

#[tokio::test]
async fn the_share_of_a_replica_that_died_comes_back_when_its_leases_expire() {
    let env = TestRedis::new().await;
    let q = env.queue("orphaned");
    // A replica that died while running two jobs: its leases run 2 s more and
    // are never extended.
    let now_ms = queue_core::testing::unix_ms(std::time::SystemTime::now());
    let _: () = env
        .cmd(
            redis::cmd("ZADD")
                .arg(q.keys().limit_running())
                .arg(now_ms + 2_000)
                .arg("0:dead-1")
                .arg(now_ms + 2_000)
                .arg("0:dead-2"),
        )
        .await;
    let seen = InFlight::default();
    let worker = env.spawn_worker(&q, limited(2), seen.handler(ms(1)));
    let jobs = (0..3).map(|n| NewJob::new("t.call", format!("call {n}")));
    env.producer.enqueue_many(&q, jobs).await.expect("enqueue");

    holds_for(
        "nothing starts while the dead replica's leases last",
        ms(300),
        async || seen.starts.lock().expect("lock").is_empty(),
    )
    .await;
    let s = env
        .stats_until(&q, "the jobs ran once the leases expired", |s| {
            s.completed == 3
        })
        .await;
    assert_eq!((s.retried, s.failed), (0, 0), "{s:#?}");
    assert_eq!(seen.first_attempts.load(Ordering::SeqCst), 3);
    worker.stop().await;
    env.finish().await;
}
