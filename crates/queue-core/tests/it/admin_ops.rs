//! Operator actions: retrying, deleting and flushing dead letters, purging.

use std::collections::HashMap;
use std::sync::Arc;

use queue_core::admin::PurgeReport;
use queue_core::testing::{
    Run, Runs, TestRedis, eventually, fast_worker_config, fast_worker_config_attempts,
};
use queue_core::{Error, Job, JobError, NewJob, WorkerConfig};
use tokio::sync::Notify;

#[tokio::test]
async fn dead_letters_run_again_when_retried_by_entry_id_by_job_id_or_all_at_once() {
    let env = TestRedis::new().await;
    let q = env.queue("redo");
    let config = fast_worker_config_attempts(2);
    // Fails both attempts of its first life, succeeds once retried from the DLQ.
    let runs = Runs::default();
    let r = runs.clone();
    let worker = env.spawn_worker(
        &q,
        config,
        runs.answering(move |run: &Run| {
            let n = r.of(&run.job_id).len();
            if n <= 2 {
                return Err(JobError::retry(anyhow::anyhow!("failed run {n}")));
            }
            Ok(())
        }),
    );
    let ids: Vec<String> = env
        .producer
        .enqueue_many(&q, (0..3).map(|i| NewJob::new("t.redo", format!("{i}"))))
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.id().to_owned())
        .collect();
    // An undecodable entry, which "retry all" must leave where it is.
    env.add_raw(&q, [0x0f, 0xff]).await;
    env.stats_until(&q, "everything is dead-lettered", |s| s.dead_lettered == 4)
        .await;

    let first = env.admin.dead_letter(&q, &ids[0]).await.expect("by job id");
    assert_eq!(first.attempts, Some(2));
    env.admin
        .retry_dead(&q, &first.id)
        .await
        .expect("retry by dead-letter entry id");
    env.admin
        .retry_dead(&q, &ids[1])
        .await
        .expect("retry by job id");
    env.stats_until(&q, "the two retried jobs completed", |s| s.completed == 2)
        .await;
    // Retrying twice is refused: the dead letter is gone.
    assert!(matches!(
        env.admin.retry_dead(&q, &first.id).await,
        Err(Error::NoSuchDeadLetter { .. })
    ));

    let retried = env.admin.retry_all_dead(&q).await.expect("retry all");
    assert_eq!(retried, 1, "only the third job decodes");
    let s = env
        .stats_until(&q, "the third job completed", |s| s.completed == 3)
        .await;
    assert_eq!(s.failed, 1, "the undecodable entry stays");
    for id in &ids {
        let runs = runs.of(id);
        assert_eq!(runs.len(), 3, "{runs:?}");
        // A retried dead letter starts over at attempt 1, knowing why it failed
        // and that an operator sent it back (its row is to run again).
        assert_eq!(
            (runs[2].attempt, runs[2].last_error.as_str()),
            (1, "failed run 2")
        );
        assert!(!runs[0].dead_letter_retry && !runs[1].dead_letter_retry);
        assert!(runs[2].dead_letter_retry, "{:?}", runs[2]);
    }
    env.assert_drained(&q).await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn purge_deletes_waiting_and_delayed_jobs_but_never_a_running_one() {
    let env = TestRedis::new().await;
    let q = env.queue("purge");
    // One slot, taken by a job that runs until released: later jobs must wait.
    let config = WorkerConfig {
        concurrency: 1.try_into().expect("nonzero"),
        ..fast_worker_config()
    };
    let release = Arc::new(Notify::new());
    let runs = Runs::default();
    let (r, gate) = (runs.clone(), release.clone());
    let worker = env.spawn_worker(&q, config, move |job: Job| {
        let (r, gate) = (r.clone(), gate.clone());
        async move {
            r.record(&job);
            gate.notified().await;
            Ok(())
        }
    });
    let running = env.enqueue(&q, NewJob::new("t.running", "x")).await;
    eventually("the first job runs", async || {
        (runs.len() == 1).then_some(())
    })
    .await;
    env.producer
        .enqueue_many(&q, (0..3).map(|_| NewJob::new("t.waiting", "x")))
        .await
        .expect("enqueue");
    env.producer
        .enqueue_many(
            &q,
            (0..2)
                .map(|_| NewJob::new("t.delayed", "x").delay(std::time::Duration::from_secs(3600))),
        )
        .await
        .expect("enqueue");
    let s = env.stats(&q).await;
    assert_eq!((s.waiting, s.active, s.delayed), (3, 1, 2));

    let report = env.admin.purge(&q).await.expect("purge");
    assert_eq!(
        report,
        PurgeReport {
            waiting: 3,
            delayed: 2
        }
    );
    let s = env.stats(&q).await;
    assert_eq!((s.waiting, s.active, s.delayed), (0, 1, 0));

    // The running job was untouched: it still completes and is acknowledged.
    release.notify_one();
    env.stats_until(&q, "the running job completed", |s| s.completed == 1)
        .await;
    let all = runs.all();
    assert_eq!(all.len(), 1, "a purged job ran: {all:?}");
    assert_eq!(all[0].job_id, running.id());
    env.assert_drained(&q).await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn dead_letters_can_be_deleted_one_by_one_or_flushed() {
    let env = TestRedis::new().await;
    let q = env.queue("dlq-ops");
    let worker = env.spawn_worker(&q, fast_worker_config(), |_job: Job| async {
        Err(JobError::permanent(anyhow::anyhow!("rejected")))
    });
    let ids: Vec<String> = env
        .producer
        .enqueue_many(&q, (0..3).map(|i| NewJob::new("t.reject", format!("{i}"))))
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.id().to_owned())
        .collect();
    env.stats_until(&q, "three dead letters", |s| s.failed == 3)
        .await;

    let first = env.admin.dead_letter(&q, &ids[0]).await.expect("found");
    env.admin
        .delete_dead(&q, &first.id)
        .await
        .expect("delete by entry id");
    assert!(matches!(
        env.admin.dead_letter(&q, &first.id).await,
        Err(Error::NoSuchDeadLetter { .. })
    ));
    env.admin
        .delete_dead(&q, &ids[1])
        .await
        .expect("delete by job id");
    let left = env.dead_letters(&q).await;
    let left: Vec<&str> = left.iter().map(|d| d.job_id.as_str()).collect();
    assert_eq!(left, [ids[2].as_str()]);
    assert!(matches!(
        env.admin.delete_dead(&q, &ids[1]).await,
        Err(Error::NoSuchDeadLetter { .. })
    ));

    assert_eq!(env.admin.flush_dead(&q).await.expect("flush"), 1);
    let s = env.stats(&q).await;
    assert_eq!(s.failed, 0);
    assert_eq!(s.dead_lettered, 3, "the counter keeps the history");
    assert!(env.dead_letters(&q).await.is_empty());
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn the_done_stream_keeps_the_configured_number_of_completions_whatever_the_batch_sizes() {
    let env = TestRedis::new().await;
    let q = env.queue("done-retention");
    // Big batches first: hundreds of jobs settled a few hundred at a time.
    let jobs = (0..600).map(|n| NewJob::new("t.bulk", format!("{n}")));
    env.producer.enqueue_many(&q, jobs).await.expect("enqueue");
    let config = WorkerConfig {
        concurrency: 50.try_into().expect("nonzero"),
        done_retention: 10,
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, Runs::default().recorder());
    env.stats_until(&q, "the bulk is done", |s| s.completed == 600)
        .await;
    // Then single completions, one batch each.
    let mut last = Vec::new();
    for n in 0..20u64 {
        let id = env
            .enqueue(&q, NewJob::new("t.single", "x"))
            .await
            .id()
            .to_owned();
        env.stats_until(&q, "the single job is done", |s| s.completed == 601 + n)
            .await;
        last.push(id);
    }
    worker.stop().await;
    let kept = env
        .admin
        .completions(&q, 1_000_000)
        .await
        .expect("completions");
    // At least the 10 newest, at most half as many again (trimming is amortized).
    let kept_ids: Vec<&str> = kept.iter().map(|c| c.job_id.as_str()).collect();
    assert!(
        (10..=15).contains(&kept.len()),
        "{} completions kept",
        kept.len()
    );
    let newest: Vec<&str> = last
        .iter()
        .rev()
        .take(kept.len())
        .map(String::as_str)
        .collect();
    assert_eq!(kept_ids, newest, "the newest completions are the ones kept");
    env.finish().await;
}

#[tokio::test]
async fn create_groups_makes_every_lane_readable_before_any_worker_and_can_run_again() {
    let env = TestRedis::new().await;
    let q = env.priority_queue("pre");
    // A job enqueued before the group exists is still read: the group starts at 0.
    env.enqueue(&q, NewJob::new("t.pre", "early")).await;
    let groups = async |lane| -> Vec<String> {
        let groups: Vec<HashMap<String, redis::Value>> = env
            .cmd(redis::cmd("XINFO").arg("GROUPS").arg(q.keys().stream(lane)))
            .await;
        groups
            .iter()
            .map(|g| redis::from_redis_value(g["name"].clone()).expect("a name"))
            .collect()
    };
    assert!(groups(None).await.is_empty(), "no group before");

    env.admin.create_groups(&q).await.expect("create");
    env.admin.create_groups(&q).await.expect("again");
    for lane in [Some("high"), None, Some("low")] {
        assert_eq!(
            groups(lane).await,
            [WorkerConfig::default().group],
            "{lane:?}"
        );
    }
    let stats = env.stats(&q).await;
    assert_eq!((stats.waiting, stats.lag), (1, Some(1)), "{stats:?}");
    // Listed in the registry with its lanes, as a worker would list it.
    let opened = env.admin.open("pre").await.expect("listed");
    assert_eq!(opened.lanes(), q.lanes());
    env.finish().await;
}
