//! Repeating jobs: once per period however many replicas declare them, across
//! restarts, visible in the queue's stats.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use queue_core::testing::{
    RunningWorker, Runs, TestRedis, eventually, fast_worker_config, holds_for, ms,
};
use queue_core::{Every, NewJob, Queue, RepeatingJob, Worker};

fn tick(every: Every) -> RepeatingJob {
    RepeatingJob::new("tick", every, |start: SystemTime| {
        let start_ms = start
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        NewJob::new("t.tick", start_ms.to_string())
    })
    .expect("valid repeating job")
}

/// A replica: a worker of `q` recording its runs in `runs` that declares `tick(every)`.
fn spawn_ticking(env: &TestRedis, q: &Queue, runs: &Runs, every: Every) -> RunningWorker {
    let worker = Worker::new(
        env.broker.clone(),
        q.clone(),
        fast_worker_config(),
        runs.recorder(),
    )
    .expect("valid worker")
    .repeat(tick(every))
    .expect("declared once");
    env.spawn(worker)
}

#[tokio::test]
async fn two_replicas_enqueue_one_job_per_period() {
    let env = TestRedis::new().await;
    let q = env.queue("repeat-every");
    let runs = Runs::default();
    let every = Every::interval(Duration::from_secs(1)).expect("valid");
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(spawn_ticking(&env, &q, &runs, every));
    }
    // Three period boundaries pass while both replicas run.
    let periods = eventually("jobs of three periods ran", async || {
        let mut by_job: BTreeMap<String, usize> = BTreeMap::new();
        for run in runs.all() {
            *by_job.entry(run.job_id).or_default() += 1;
        }
        (by_job.len() >= 3).then_some(by_job)
    })
    .await;
    for replica in replicas {
        replica.stop().await;
    }
    let mut by_job: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs.all() {
        *by_job.entry(run.job_id.clone()).or_default() += 1;
        // The payload is the period start that the id names.
        assert_eq!(
            run.job_id,
            format!("tick:{}", String::from_utf8_lossy(&run.payload))
        );
    }
    assert!(by_job.len() >= periods.len());
    assert!(
        by_job.values().all(|&n| n == 1),
        "one job per period, whatever the replicas: {by_job:?}"
    );
    let starts: Vec<i64> = by_job
        .keys()
        .map(|id| {
            id.trim_start_matches("tick:")
                .parse()
                .expect("period start")
        })
        .collect();
    assert!(
        starts.iter().all(|s| s % 1000 == 0),
        "aligned periods: {starts:?}"
    );
    let stats = env.stats(&q).await;
    assert_eq!(stats.completed as usize, by_job.len());
    env.finish().await;
}

#[tokio::test]
async fn a_restarted_worker_does_not_repeat_the_period_and_stats_show_the_last_run() {
    let env = TestRedis::new().await;
    let q = env.queue("repeat-daily");
    let runs = Runs::default();
    // Daily at midnight UTC: the current period began today at 00:00 and lasts all day.
    let every = Every::daily_at(0, 0).expect("valid");
    let start_worker = || spawn_ticking(&env, &q, &runs, every);

    let first = start_worker();
    env.stats_until(&q, "today's job ran", |s| s.completed == 1)
        .await;
    first.stop().await;

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let today = every.period_start(now_ms);
    let stats = env.stats(&q).await;
    assert_eq!(stats.repeating.len(), 1, "{stats:?}");
    let status = &stats.repeating[0];
    assert_eq!(status.name, "tick");
    assert_eq!(status.schedule, "daily at 00:00 UTC");
    assert_eq!(status.last_period_ms, today);
    assert_eq!(status.last_job_id, format!("tick:{today}"));

    // A restart (a new process would do the same) finds today's job enqueued.
    let second = start_worker();
    holds_for("no second job today", ms(500), async || {
        env.stats(&q).await.completed == 1 && runs.len() == 1
    })
    .await;
    second.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_repeating_job_cannot_be_declared_twice_on_one_worker() {
    let env = TestRedis::new().await;
    let q = env.queue("repeat-twice");
    let every = Every::interval(Duration::from_secs(5)).expect("valid");
    let worker = Worker::new(
        env.broker.clone(),
        q,
        fast_worker_config(),
        Runs::default().recorder(),
    )
    .expect("valid worker")
    .repeat(tick(every))
    .expect("first declaration");
    let err = worker.repeat(tick(every)).expect_err("second declaration");
    assert!(err.to_string().contains("declared twice"), "{err}");
}
