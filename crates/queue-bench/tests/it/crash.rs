//! A worker process killed mid-job: its entry is finished by another consumer.

use queue_core::NewJob;
use queue_core::testing::{Runs, TestRedis, fast_worker_config};

use crate::support::WorkerProcess;

#[tokio::test]
async fn a_job_of_a_worker_process_killed_mid_run_is_finished_by_another_consumer() {
    let env = TestRedis::new().await;
    let q = env.queue("crash");
    let id = env
        .producer
        .enqueue(&q, NewJob::new("t.crash", "x"))
        .await
        .expect("enqueue")
        .id()
        .to_owned();

    // The process sleeps a full minute in every run: it is mid-job when killed.
    let mut process = WorkerProcess::spawn(
        &env.prefix,
        q.name(),
        &[
            "--sleep-min-ms",
            "60000",
            "--sleep-ms",
            "60000",
            "--visibility-ms",
            "400",
            "--heartbeat-ms",
            "100",
            "--reclaim-ms",
            "50",
        ],
    )
    .await;
    env.stats_until(&q, "the process runs the job", |s| s.active == 1)
        .await;
    let pending = env.pending_entries(&q).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].1, process.consumer,
        "the process holds the entry"
    );

    process.kill();
    // Dead consumer, job still pending: not lost, not acknowledged.
    let s = env.stats(&q).await;
    assert_eq!((s.active, s.completed), (1, 0));

    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());
    let s = env
        .stats_until(&q, "another consumer completed the job", |s| {
            s.completed == 1
        })
        .await;
    assert!(s.reclaimed >= 1, "{s:?}");
    let all = runs.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].job_id, id);
    assert_eq!(all[0].deliveries, 2, "the second delivery of the entry");
    env.assert_drained(&q).await;

    worker.stop().await;
    env.finish().await;
}
