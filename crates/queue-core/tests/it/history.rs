//! The per-minute history the workers write as they settle runs.

use prost::Message;
use queue_core::testing::{TestRedis, fast_worker_config_attempts};
use queue_core::{Envelope, Job, JobError, MinuteStats, NewJob};

async fn handler(job: Job) -> Result<(), JobError> {
    match job.kind() {
        "t.flaky" if job.attempt() == 1 => Err(JobError::retry(anyhow::anyhow!("first try fails"))),
        "t.doomed" => Err(JobError::permanent(anyhow::anyhow!("never works"))),
        _ => Ok(()),
    }
}

/// Redis's clock, in unix minutes.
async fn server_minute(env: &TestRedis) -> u64 {
    let (secs, _): (u64, u64) = env.cmd(&redis::cmd("TIME")).await;
    secs / 60
}

#[tokio::test]
async fn workers_count_completions_failed_runs_dead_letters_and_waits_per_minute() {
    let env = TestRedis::new().await;
    let q = env.queue("history");
    let first_minute = server_minute(&env).await;
    // A job that became ready 5 s before it was written, as any producer may
    // write one: its run waited at least that long.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let waited = Envelope {
        id: "waited-5s".into(),
        kind: "t.ok".into(),
        attempt: 1,
        enqueued_at_ms: now_ms - 5000,
        available_at_ms: now_ms - 5000,
        ..Envelope::default()
    };
    env.add_raw(&q, waited.encode_to_vec()).await;
    env.add_raw(&q, [0x0f, 0xff]).await;
    env.producer
        .enqueue_many(
            &q,
            ["t.ok", "t.ok", "t.flaky", "t.doomed"].map(|kind| NewJob::new(kind, "x")),
        )
        .await
        .expect("enqueue");
    let worker = env.spawn_worker(&q, fast_worker_config_attempts(2), handler);
    env.stats_until(&q, "four completed, two dead-lettered", |s| {
        s.completed == 4 && s.dead_lettered == 2
    })
    .await;
    worker.stop().await;

    let history = env.admin.history(&q, 5).await.expect("history");
    let last_minute = server_minute(&env).await;
    assert_eq!(history.len(), 5, "dense: one per minute");
    let now = history.last().expect("a minute").minute;
    assert!(
        (first_minute..=last_minute).contains(&now),
        "{now} not between {first_minute} and {last_minute}"
    );
    assert!(history.windows(2).all(|w| w[1].minute == w[0].minute + 1));
    let total = MinuteStats::sum(&history);
    // Runs: the waited job, two ok, the flaky job twice, the doomed one; the
    // undecodable entry failed without a run.
    assert_eq!(
        (
            total.completed,
            total.failed,
            total.dead_lettered,
            total.waited
        ),
        (4, 3, 2, 6),
        "{history:#?}"
    );
    assert!(
        (5000..60_000).contains(&total.wait_ms_total),
        "the waited job's 5 s are in the waits: {total:?}"
    );
    // Minutes before the queue existed are zeros.
    assert!(
        history
            .iter()
            .filter(|m| m.minute < first_minute)
            .all(|m| *m
                == MinuteStats {
                    minute: m.minute,
                    ..MinuteStats::default()
                })
    );

    // Kept a day and an hour after its minute ends, then gone by itself.
    let written = history
        .iter()
        .find(|m| m.completed > 0)
        .expect("a minute with completions");
    let ttl: i64 = env
        .cmd(redis::cmd("TTL").arg(q.keys().history(written.minute)))
        .await;
    assert!((24 * 3600..=25 * 3600 + 60).contains(&ttl), "ttl {ttl}");

    assert_eq!(env.admin.history(&q, 0).await.expect("history").len(), 1);
    assert_eq!(
        env.admin.history(&q, 100_000).await.expect("history").len(),
        1440
    );
    env.finish().await;
}
