//! Unique until settled: a key held from the enqueue until the job completes or
//! is dead-lettered, whatever happens in between (waiting, running, retrying).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use queue_core::testing::{Runs, TestRedis, eventually, fast_worker_config, ms};
use queue_core::{Backoff, Enqueued, Job, JobError, NewJob, WorkerConfig};
use tokio::sync::Notify;

fn ensure(key: &str) -> NewJob {
    NewJob::new("t.ensure", "x").unique_until_settled(key)
}

#[tokio::test]
async fn a_second_ensure_while_the_job_waits_runs_or_retries_creates_nothing() {
    let env = TestRedis::new().await;
    let q = env.queue("unique");
    let first = env.enqueue(&q, ensure("person:42")).await;
    assert!(matches!(first, Enqueued::Added { .. }), "{first:?}");
    let id = first.id().to_owned();

    // Waiting: nothing new.
    let again = env.enqueue(&q, ensure("person:42")).await;
    assert_eq!(again, Enqueued::Duplicate { id: id.clone() });

    // Attempt 1 blocks until released, then fails; attempt 2 succeeds.
    let release = Arc::new(Notify::new());
    let attempts = Arc::new(AtomicU32::new(0));
    let runs = Runs::default();
    let handler = {
        let (release, attempts, runs) = (release.clone(), attempts.clone(), runs.clone());
        move |job: Job| {
            let (release, attempts, runs) = (release.clone(), attempts.clone(), runs.clone());
            async move {
                runs.record(&job);
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    release.notified().await;
                    return Err(JobError::retry(anyhow::anyhow!("first attempt fails")));
                }
                Ok(())
            }
        }
    };
    let config = WorkerConfig {
        // Long enough to look at the job while it waits for its retry.
        backoff: Backoff {
            initial: ms(700),
            jitter: 0.0,
            ..Backoff::default()
        },
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, handler);

    // Running: nothing new.
    eventually("the job runs", async || (runs.len() == 1).then_some(())).await;
    let again = env.enqueue(&q, ensure("person:42")).await;
    assert_eq!(again, Enqueued::Duplicate { id: id.clone() });

    // Retrying (in the delayed set): nothing new.
    release.notify_one();
    env.stats_until(&q, "the job waits for its retry", |s| {
        s.retried == 1 && s.delayed == 1
    })
    .await;
    let again = env.enqueue(&q, ensure("person:42")).await;
    assert_eq!(again, Enqueued::Duplicate { id: id.clone() });

    // Settled: the key is free, and the next ensure creates a new job.
    env.stats_until(&q, "the retry completes", |s| s.completed == 1)
        .await;
    let next = env.enqueue(&q, ensure("person:42")).await;
    assert!(matches!(next, Enqueued::Added { .. }), "{next:?}");
    assert_ne!(next.id(), id);
    env.stats_until(&q, "the new job completes", |s| s.completed == 2)
        .await;
    let ids: Vec<String> = runs.all().into_iter().map(|r| r.job_id).collect();
    assert_eq!(ids, [id.clone(), id, next.id().to_owned()]);
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_dead_lettered_job_releases_its_unique_key() {
    let env = TestRedis::new().await;
    let q = env.queue("unique-dead");
    let first = env.enqueue(&q, ensure("company:7").delay(ms(50))).await;
    assert!(matches!(first, Enqueued::Scheduled { .. }), "{first:?}");
    let again = env.enqueue(&q, ensure("company:7")).await;
    assert_eq!(
        again,
        Enqueued::Duplicate {
            id: first.id().to_owned()
        },
        "delayed jobs hold the key too"
    );

    let worker = env.spawn_worker(&q, fast_worker_config(), |_job: Job| async {
        Err::<(), _>(JobError::permanent(anyhow::anyhow!("no way")))
    });
    env.stats_until(&q, "the job is dead-lettered", |s| s.dead_lettered == 1)
        .await;
    worker.stop().await;
    let next = env.enqueue(&q, ensure("company:7")).await;
    assert!(matches!(next, Enqueued::Added { .. }), "{next:?}");

    // Retrying the dead letter takes the key again only if it is free: here the
    // new job holds it, and keeps it.
    let letters = env.dead_letters(&q).await;
    env.admin
        .retry_dead(&q, &letters[0].id)
        .await
        .expect("retry");
    let holder = env.admin.unique_holder(&q, "company:7").await.expect("get");
    assert_eq!(holder.as_deref(), Some(next.id()));
    env.finish().await;
}

#[tokio::test]
async fn purging_a_queue_releases_the_unique_keys_of_the_purged_jobs() {
    let env = TestRedis::new().await;
    let q = env.queue("unique-purge");
    for job in [ensure("a"), ensure("b").delay(ms(60_000))] {
        env.enqueue(&q, job).await;
    }
    let report = env.admin.purge(&q).await.expect("purge");
    assert_eq!((report.waiting, report.delayed), (1, 1));
    for key in ["a", "b"] {
        let next = env.enqueue(&q, ensure(key)).await;
        assert!(matches!(next, Enqueued::Added { .. }), "{key}: {next:?}");
    }
    env.finish().await;
}

#[tokio::test]
async fn a_poison_entry_dead_lettered_by_reclaim_releases_its_unique_key() {
    let env = TestRedis::new().await;
    let q = env.queue("unique-poison");
    let entry_id = env.enqueue_entry(&q, ensure("poison")).await;
    // A worker "died" holding the entry twice: a raw read, then a claim.
    env.read_as(&q, "ghost-1", 1).await;
    env.claim_as(&q, "ghost-2", &entry_id).await;

    let runs = Runs::default();
    let config = WorkerConfig {
        max_deliveries: 2,
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, runs.recorder());
    env.stats_until(&q, "the poison entry is dead-lettered", |s| {
        s.dead_lettered == 1
    })
    .await;
    assert!(runs.is_empty(), "the poison entry never ran");
    let next = eventually("the unique key is released", async || {
        match env.enqueue(&q, ensure("poison")).await {
            Enqueued::Duplicate { .. } => None,
            added => Some(added),
        }
    })
    .await;
    env.stats_until(&q, "the new job completes", |s| s.completed == 1)
        .await;
    assert_eq!(runs.all()[0].job_id, next.id());
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_job_removed_by_hand_gives_its_unique_key_to_the_next_enqueue() {
    let env = TestRedis::new().await;
    let q = env.queue("unique-removed");
    // Delayed, then removed from the delayed set (ZREM of its member).
    let delayed = env.enqueue(&q, ensure("d").delay(ms(3_600_000))).await;
    assert!(matches!(delayed, Enqueued::Scheduled { .. }), "{delayed:?}");
    let members: Vec<Vec<u8>> = env
        .cmd(redis::cmd("ZRANGE").arg(q.keys().delayed()).arg(0).arg(-1))
        .await;
    let removed: u64 = env
        .cmd(redis::cmd("ZREM").arg(q.keys().delayed()).arg(&members[0]))
        .await;
    assert_eq!(removed, 1);
    // Waiting, then deleted from the stream (XDEL of its entry).
    let entry_id = env.enqueue_entry(&q, ensure("w")).await;
    let deleted: u64 = env
        .cmd(redis::cmd("XDEL").arg(q.keys().stream(None)).arg(&entry_id))
        .await;
    assert_eq!(deleted, 1);

    for (key, old) in [("d", delayed.id().to_owned()), ("w", String::new())] {
        let next = env.enqueue(&q, ensure(key)).await;
        assert!(matches!(next, Enqueued::Added { .. }), "{key}: {next:?}");
        assert_ne!(next.id(), old);
        // The new job holds the key now: a third ensure is a duplicate of it.
        let again = env.enqueue(&q, ensure(key)).await;
        assert_eq!(
            again,
            Enqueued::Duplicate {
                id: next.id().to_owned()
            },
            "{key}"
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn a_job_that_moves_between_the_stream_and_the_delayed_set_keeps_its_key() {
    let env = TestRedis::new().await;
    let q = env.queue("unique-moves");
    // Delayed, promoted, run and failed, delayed for its retry, promoted again:
    // at every step a second ensure is a duplicate of the one job.
    let first = env.enqueue(&q, ensure("m").delay(ms(30))).await;
    let id = first.id().to_owned();
    let attempts = Arc::new(AtomicU32::new(0));
    let release = Arc::new(Notify::new());
    let handler = {
        let (attempts, release) = (attempts.clone(), release.clone());
        move |_job: Job| {
            let (attempts, release) = (attempts.clone(), release.clone());
            async move {
                let n = attempts.fetch_add(1, Ordering::SeqCst);
                release.notified().await;
                if n == 0 {
                    return Err(JobError::retry(anyhow::anyhow!("first attempt fails")));
                }
                Ok(())
            }
        }
    };
    let config = WorkerConfig {
        backoff: Backoff {
            initial: ms(30),
            jitter: 0.0,
            ..Backoff::default()
        },
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, handler);
    for attempt in 1..=2 {
        eventually("the attempt runs", async || {
            (attempts.load(Ordering::SeqCst) == attempt).then_some(())
        })
        .await;
        let again = env.enqueue(&q, ensure("m")).await;
        assert_eq!(
            again,
            Enqueued::Duplicate { id: id.clone() },
            "attempt {attempt}"
        );
        release.notify_one();
    }
    env.stats_until(&q, "the retry completes", |s| s.completed == 1)
        .await;
    worker.stop().await;
    let held: Option<String> = env.cmd(redis::cmd("GET").arg(q.keys().uniq("m"))).await;
    assert_eq!(held, None, "released on completion");
    env.finish().await;
}

#[tokio::test]
async fn a_retried_dead_letter_takes_its_key_back_from_a_holder_removed_by_hand() {
    let env = TestRedis::new().await;
    let q = env.queue("unique-dlq-takeover");
    env.enqueue(&q, ensure("k")).await;
    let worker = env.spawn_worker(&q, fast_worker_config(), |_job: Job| async {
        Err::<(), _>(JobError::permanent(anyhow::anyhow!("no way")))
    });
    env.stats_until(&q, "the job is dead-lettered", |s| s.dead_lettered == 1)
        .await;
    worker.stop().await;
    // A second job takes the key, then is deleted from the stream by hand.
    let entry_id = env.enqueue_entry(&q, ensure("k")).await;
    let deleted: u64 = env
        .cmd(redis::cmd("XDEL").arg(q.keys().stream(None)).arg(&entry_id))
        .await;
    assert_eq!(deleted, 1);

    let letters = env.dead_letters(&q).await;
    env.admin
        .retry_dead(&q, &letters[0].id)
        .await
        .expect("retry");
    let holder = env.admin.unique_holder(&q, "k").await.expect("get");
    assert_eq!(holder.as_deref(), Some(letters[0].job_id.as_str()));
    let again = env.enqueue(&q, ensure("k")).await;
    assert_eq!(
        again,
        Enqueued::Duplicate {
            id: letters[0].job_id.clone()
        }
    );
    env.finish().await;
}
