//! When and in which order jobs start: delays, wall-clock schedules, dedup keys,
//! pause/resume and priority lanes.

use std::time::{Duration, Instant, SystemTime};

use queue_core::testing::{
    Runs, TestRedis, eventually, fast_worker_config, holds_for, ms, unix_ms,
};
use queue_core::{Enqueued, Error, NewJob, Priority, WorkerConfig};

#[tokio::test]
async fn a_delayed_job_is_invisible_until_due_and_runs_after() {
    let env = TestRedis::new().await;
    let q = env.queue("delayed");
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());

    let Enqueued::Scheduled { id, due_ms } = env
        .enqueue(&q, NewJob::new("t.later", "x").delay(ms(600)))
        .await
    else {
        panic!("a delayed job is scheduled");
    };
    let s = env.stats(&q).await;
    assert_eq!((s.delayed, s.waiting, s.active), (1, 0, 0));
    assert_eq!(runs.len(), 0);

    env.stats_until(&q, "the delayed job completed", |s| s.completed == 1)
        .await;
    let run = &runs.all()[0];
    assert_eq!(run.job_id, id);
    // The due time comes from the Redis clock, the run time from ours: same host.
    assert!(
        run.started_unix_ms >= due_ms,
        "started {} ms before it was due",
        due_ms - run.started_unix_ms
    );
    env.assert_drained(&q).await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_job_scheduled_at_a_wall_clock_time_runs_at_or_after_it() {
    let env = TestRedis::new().await;
    let q = env.queue("at");
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());

    let at = SystemTime::now() + ms(500);
    let scheduled = env.enqueue(&q, NewJob::new("t.at", "x").run_at(at)).await;
    assert!(
        matches!(scheduled, Enqueued::Scheduled { due_ms, .. } if due_ms == unix_ms(at)),
        "{scheduled:?}"
    );
    let s = env.stats(&q).await;
    assert_eq!((s.delayed, s.waiting), (1, 0));

    // A time in the past means "now".
    let past = env
        .enqueue(
            &q,
            NewJob::new("t.past", "x").run_at(SystemTime::now() - ms(60_000)),
        )
        .await;

    env.stats_until(&q, "both jobs completed", |s| s.completed == 2)
        .await;
    let all = runs.all();
    assert_eq!(all[0].job_id, past.id(), "the overdue job runs first");
    assert_eq!(all[1].job_id, scheduled.id());
    assert!(all[1].started_unix_ms >= unix_ms(at), "started early");
    env.assert_drained(&q).await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_dedup_key_suppresses_the_duplicate_and_works_again_after_its_ttl() {
    let env = TestRedis::new().await;
    let q = env.queue("dedup");
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());
    let ttl = ms(1000);
    let job = |payload: &str| NewJob::new("t.once", payload.to_owned()).dedup_key("order-7", ttl);

    let first = env.enqueue(&q, job("1")).await;
    assert!(matches!(first, Enqueued::Added { .. }), "{first:?}");
    let second = env.enqueue(&q, job("2")).await;
    assert_eq!(
        second,
        Enqueued::Duplicate {
            id: first.id().to_owned()
        }
    );
    env.stats_until(&q, "the first job completed", |s| s.completed == 1)
        .await;

    let uniq = q.keys().uniq("order-7");
    eventually("the dedup key expired", async || {
        let exists: bool = env.cmd(redis::cmd("EXISTS").arg(&uniq)).await;
        (!exists).then_some(())
    })
    .await;
    let third = env.enqueue(&q, job("3")).await;
    assert!(matches!(third, Enqueued::Added { .. }), "{third:?}");
    assert_ne!(third.id(), first.id());

    env.stats_until(&q, "the third job completed", |s| s.completed == 2)
        .await;
    env.assert_drained(&q).await;
    let payloads: Vec<Vec<u8>> = runs.all().iter().map(|r| r.payload.to_vec()).collect();
    assert_eq!(
        payloads,
        [b"1".to_vec(), b"3".to_vec()],
        "the duplicate ran"
    );
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_paused_queue_hands_out_nothing_until_resumed() {
    let env = TestRedis::new().await;
    let q = env.queue("paused");
    env.admin.pause(&q).await.expect("pause");
    assert!(env.stats(&q).await.paused);
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());
    env.producer
        .enqueue_many(&q, (0..3).map(|i| NewJob::new("t.wait", format!("{i}"))))
        .await
        .expect("enqueue");

    // Fifteen pause polls: the worker has every chance to start a job and must
    // not. (A read that raced the pause may hold entries claimed, unstarted.)
    holds_for("jobs stay unstarted", ms(300), async || {
        let s = env.stats(&q).await;
        s.waiting + s.active == 3 && s.completed == 0 && runs.is_empty()
    })
    .await;

    let resumed_at = Instant::now();
    env.admin.resume(&q).await.expect("resume");
    env.stats_until(&q, "the jobs completed after resume", |s| {
        s.completed == 3 && !s.paused
    })
    .await;
    assert!(runs.all().iter().all(|r| r.started >= resumed_at));
    env.assert_drained(&q).await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_worker_blocked_in_a_read_when_the_queue_is_paused_starts_nothing_until_resumed() {
    let env = TestRedis::new().await;
    let q = env.queue("paused-blocked");
    // A long block so that the read is still waiting in Redis when we pause, and
    // rare reclaims because XAUTOCLAIM would reset the idle time we watch.
    let config = WorkerConfig {
        block: Duration::from_secs(10),
        reclaim_interval: Duration::from_secs(10),
        ..fast_worker_config()
    };
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, config, runs.recorder());
    env.enqueue(&q, NewJob::new("t.warmup", "x")).await;
    env.stats_until(&q, "the warm-up job completed", |s| s.completed == 1)
        .await;
    // Only a blocked XREADGROUP leaves the consumer untouched this long.
    eventually("the worker is blocked in XREADGROUP", async || {
        let consumers = env.consumers(&q).await;
        consumers
            .iter()
            .any(|c| c.name == worker.consumer && c.idle_ms >= 200)
            .then_some(())
    })
    .await;

    env.admin.pause(&q).await.expect("pause");
    env.producer
        .enqueue_many(&q, (0..2).map(|i| NewJob::new("t.held", format!("{i}"))))
        .await
        .expect("enqueue");
    // The blocked read may return an entry enqueued after the pause; it must be
    // held, not started.
    holds_for("nothing starts while paused", ms(300), async || {
        runs.len() == 1
    })
    .await;

    let resumed_at = Instant::now();
    env.admin.resume(&q).await.expect("resume");
    env.stats_until(&q, "the held jobs completed", |s| s.completed == 3)
        .await;
    let all = runs.all();
    assert!(all[1..].iter().all(|r| r.started >= resumed_at), "{all:?}");
    env.assert_drained(&q).await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn high_priority_jobs_start_before_normal_and_low_ones() {
    let env = TestRedis::new().await;
    let q = env.priority_queue("lanes");
    // Interleaved on purpose: order of enqueueing must not decide.
    let plan = [
        (Priority::Low, "low-0"),
        (Priority::Normal, "normal-0"),
        (Priority::High, "high-0"),
        (Priority::Low, "low-1"),
        (Priority::High, "high-1"),
        (Priority::Normal, "normal-1"),
        (Priority::Low, "low-2"),
        (Priority::High, "high-2"),
    ];
    env.producer
        .enqueue_many(
            &q,
            plan.iter()
                .map(|(p, name)| NewJob::new("t.lane", *name).priority(*p)),
        )
        .await
        .expect("enqueue");
    assert_eq!(env.stats(&q).await.waiting, 8);

    // One at a time, so each start is a fresh choice of the highest lane.
    let config = WorkerConfig {
        concurrency: 1.try_into().expect("nonzero"),
        ..fast_worker_config()
    };
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, config, runs.recorder());
    env.stats_until(&q, "every job completed", |s| s.completed == 8)
        .await;
    let order: Vec<String> = runs
        .all()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect();
    assert_eq!(
        order,
        [
            "high-0", "high-1", "high-2", "normal-0", "normal-1", "low-0", "low-1", "low-2"
        ]
    );
    env.assert_drained(&q).await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_priority_on_a_queue_without_lanes_is_rejected() {
    let env = TestRedis::new().await;
    let q = env.queue("flat");
    for p in [Priority::High, Priority::Low] {
        let err = env
            .producer
            .enqueue(&q, NewJob::new("t.x", "x").priority(p))
            .await
            .expect_err("no lanes");
        assert!(
            matches!(&err, Error::NoPriorityLanes { queue } if queue == "flat"),
            "{err:?}"
        );
    }
    env.producer
        .enqueue(&q, NewJob::new("t.x", "x").priority(Priority::Normal))
        .await
        .expect("normal priority is the only lane");
    assert_eq!(env.stats(&q).await.waiting, 1);
    env.finish().await;
}
