//! Crash recovery: killed workers, poison entries, undecodable entries, the
//! heartbeat, graceful shutdown and the removal of dead consumers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use queue_core::admin::HEIR_CONSUMER;
use queue_core::testing::{Runs, TestRedis, eventually, fast_worker_config, ms};
use queue_core::{Enqueued, Error, Job, NewJob, WorkerConfig};

#[tokio::test]
async fn an_entry_delivered_more_than_max_deliveries_times_is_dead_lettered_instead_of_run() {
    let env = TestRedis::new().await;
    let q = env.queue("poison");
    let Enqueued::Added {
        id: poison_id,
        entry_id: poison_entry,
    } = env.enqueue(&q, NewJob::new("t.poison", "p")).await
    else {
        panic!("added");
    };
    let survivor = env
        .enqueue(&q, NewJob::new("t.survivor", "s"))
        .await
        .id()
        .to_owned();

    // Two workers that "died" holding the poison entry: a raw read by one, then a
    // claim by another (a claim counts as a delivery). The survivor was read once.
    env.read_as(&q, "ghost-1", 2).await;
    env.claim_as(&q, "ghost-2", &poison_entry).await;
    let deliveries: Vec<u64> = env
        .pending_entries(&q)
        .await
        .into_iter()
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(deliveries, [2, 1], "poison, survivor");

    // With max_deliveries 2 the reclaim (a third delivery) must not run the poison
    // entry, while the survivor's second delivery runs normally.
    let config = WorkerConfig {
        max_deliveries: 2,
        ..fast_worker_config()
    };
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, config, runs.recorder());
    let s = env
        .stats_until(&q, "both entries are settled", |s| {
            s.dead_lettered + s.completed == 2
        })
        .await;
    assert_eq!((s.dead_lettered, s.completed), (1, 1), "{s:?}");
    assert_eq!((s.reclaimed, s.failed), (1, 1));
    let all = runs.all();
    assert_eq!(all.len(), 1, "only the survivor ran: {all:?}");
    assert_eq!(
        (all[0].job_id.as_str(), all[0].deliveries),
        (survivor.as_str(), 2)
    );

    // Found by its job id although the reclaim script cannot decode envelopes.
    let dead = env
        .admin
        .dead_letter(&q, &poison_id)
        .await
        .expect("the poison job is in the dead-letter stream");
    assert_eq!(dead.kind, "t.poison");
    assert_eq!(dead.origin, poison_entry);
    assert!(dead.error.contains("max_deliveries 2"), "{}", dead.error);
    env.assert_drained(&q).await;

    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn undecodable_entries_are_dead_lettered_and_the_worker_keeps_going() {
    let env = TestRedis::new().await;
    let q = env.queue("garbage");
    let stream = q.keys().stream(None);
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());

    // Tag byte 0x0f is field 1 with wire type 7, which does not exist, so the
    // bytes can never decode however the random tail looks.
    let mut garbage = vec![0x0f];
    garbage.extend((0..64).map(|_| rand::random::<u8>()));
    let garbage_entry = env.add_raw(&q, &garbage).await;
    let fieldless_entry: String = env
        .cmd(redis::cmd("XADD").arg(&stream).arg("*").arg("x").arg("y"))
        .await;
    env.stats_until(&q, "both bad entries are dead-lettered", |s| {
        s.dead_lettered == 2
    })
    .await;

    // The same worker still runs good jobs afterwards.
    let good = env
        .producer
        .enqueue_many(&q, (0..3).map(|i| NewJob::new("t.good", format!("{i}"))))
        .await
        .expect("enqueue");
    env.stats_until(&q, "the good jobs completed", |s| s.completed == 3)
        .await;
    let mut ran: Vec<String> = runs.all().into_iter().map(|r| r.job_id).collect();
    let mut expected: Vec<String> = good.iter().map(|e| e.id().to_owned()).collect();
    ran.sort();
    expected.sort();
    assert_eq!(ran, expected, "only the good jobs reached the handler");
    env.assert_drained(&q).await;

    let letters = env.dead_letters(&q).await;
    let by_origin = |origin: &str| {
        letters
            .iter()
            .find(|d| d.origin == origin)
            .unwrap_or_else(|| panic!("no dead letter from {origin}: {letters:?}"))
    };
    let bad = by_origin(&garbage_entry);
    assert!(bad.error.contains("does not decode"), "{}", bad.error);
    assert!(bad.envelope.is_none());
    assert_eq!(bad.payload_bytes, garbage.len(), "the raw bytes are kept");
    let fieldless = by_origin(&fieldless_entry);
    assert!(
        fieldless.error.contains("no envelope field"),
        "{}",
        fieldless.error
    );
    assert!(matches!(
        env.admin.retry_dead(&q, &bad.id).await,
        Err(Error::Undecodable { .. })
    ));

    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_heartbeat_keeps_a_long_job_from_being_reclaimed() {
    let env = TestRedis::new().await;
    let q = env.queue("long");
    let runs = Runs::default();
    let handler = {
        let runs = runs.clone();
        move |job: Job| {
            let r = runs.clone();
            async move {
                r.record(&job);
                // Five visibility timeouts.
                tokio::time::sleep(ms(2000)).await;
                Ok(())
            }
        }
    };
    let config = WorkerConfig {
        job_timeout: Duration::from_secs(30),
        ..fast_worker_config()
    };
    // Two workers: whichever does not get the job looks for idle entries every 50 ms.
    let a = env.spawn_worker(&q, config.clone(), handler.clone());
    let b = env.spawn_worker(&q, config, handler);
    env.enqueue(&q, NewJob::new("t.long", "x")).await;

    let s = env
        .stats_until(&q, "the long job completed", |s| s.completed == 1)
        .await;
    assert_eq!(s.reclaimed, 0, "the running job was reclaimed");
    let all = runs.all();
    assert_eq!(all.len(), 1, "the job ran more than once: {all:?}");
    assert_eq!(all[0].deliveries, 1);
    env.assert_drained(&q).await;

    a.stop().await;
    b.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn shutdown_lets_a_running_job_finish_and_acknowledges_it() {
    let env = TestRedis::new().await;
    let q = env.queue("drain");
    let runs = Runs::default();
    let finished = Arc::new(AtomicBool::new(false));
    let (r, f) = (runs.clone(), finished.clone());
    let worker = env.spawn_worker(&q, fast_worker_config(), move |job: Job| {
        let (r, f) = (r.clone(), f.clone());
        async move {
            r.record(&job);
            tokio::time::sleep(ms(300)).await;
            f.store(true, Ordering::SeqCst);
            Ok(())
        }
    });
    env.enqueue(&q, NewJob::new("t.slow", "x")).await;
    eventually("the job started", async || (runs.len() == 1).then_some(())).await;

    worker.stop().await;
    // `run` returned only after the job finished and its outcome was written.
    assert!(finished.load(Ordering::SeqCst), "run returned mid-job");
    let s = env.stats(&q).await;
    assert_eq!((s.completed, s.active), (1, 0));
    env.assert_drained(&q).await;
    env.finish().await;
}

#[tokio::test]
async fn a_job_outliving_the_grace_period_stays_pending_until_another_worker_finishes_it() {
    let env = TestRedis::new().await;
    let q = env.queue("abandon");
    let runs = Runs::default();
    let r = runs.clone();
    let config = WorkerConfig {
        grace_period: ms(100),
        ..fast_worker_config()
    };
    let stuck = env.spawn_worker(&q, config, move |job: Job| {
        let r = r.clone();
        async move {
            r.record(&job);
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
    });
    env.enqueue(&q, NewJob::new("t.stuck", "x")).await;
    eventually("the job started", async || (runs.len() == 1).then_some(())).await;
    let stuck_consumer = stuck.consumer.clone();
    stuck.stop().await;

    // Abandoned, not settled: still pending, handed by the stopped worker (which
    // left the group) to the heir, for a live worker to reclaim.
    let s = env.stats(&q).await;
    assert_eq!(
        (s.active, s.completed, s.failed_runs, s.failed),
        (1, 0, 0, 0)
    );
    let pending = env.pending_entries(&q).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1, HEIR_CONSUMER);
    let consumers = env.consumers(&q).await;
    assert!(!consumers.iter().any(|c| c.name == stuck_consumer));

    let rescuer = env.spawn_worker(&q, fast_worker_config(), runs.recorder());
    let s = env
        .stats_until(&q, "the rescuer completed the job", |s| s.completed == 1)
        .await;
    assert!(s.reclaimed >= 1);
    let all = runs.all();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].job_id, all[0].job_id);
    assert_eq!(all[1].deliveries, 2);
    env.assert_drained(&q).await;

    rescuer.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn removing_an_idle_consumer_keeps_its_pending_job_for_a_live_worker() {
    let env = TestRedis::new().await;
    let q = env.queue("evict");
    let id = env
        .enqueue(&q, NewJob::new("t.orphan", "x"))
        .await
        .id()
        .to_owned();
    // A consumer that read the job and vanished.
    env.read_as(&q, "ghost", 1).await;
    eventually("the ghost has been idle for 100 ms", async || {
        let consumers = env.consumers(&q).await;
        consumers
            .iter()
            .any(|c| c.name == "ghost" && c.idle_ms >= 100)
            .then_some(())
    })
    .await;

    let removed = env
        .admin
        .remove_dead_consumers(&q, ms(100))
        .await
        .expect("remove dead consumers");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!((removed[0].name.as_str(), removed[0].moved), ("ghost", 1));
    let consumers = env.consumers(&q).await;
    assert!(consumers.iter().all(|c| c.name != "ghost"), "{consumers:?}");
    let pending = env.pending_entries(&q).await;
    assert_eq!(pending.len(), 1, "the entry is still pending");
    assert_eq!((pending[0].1.as_str(), pending[0].2), (HEIR_CONSUMER, 1));

    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());
    env.stats_until(&q, "the live worker completed the job", |s| {
        s.completed == 1
    })
    .await;
    let all = runs.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].job_id, id);
    env.assert_drained(&q).await;

    // A consumer that is alive (recently active) is left alone.
    let removed = env
        .admin
        .remove_dead_consumers(&q, Duration::from_secs(3600))
        .await
        .expect("remove dead consumers");
    assert!(removed.is_empty(), "{removed:?}");

    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_consumer_that_resumes_before_its_eviction_keeps_the_entries_it_holds() {
    let env = TestRedis::new().await;
    let q = env.queue("evict-resumed");
    for n in 0..2 {
        env.enqueue(&q, NewJob::new("t.held", format!("{n}"))).await;
    }
    env.read_as(&q, "sleeper", 1).await;
    let lane = eventually("the sleeper is idle for 200 ms", async || {
        let consumers = env.consumers(&q).await;
        consumers
            .into_iter()
            .find(|c| c.name == "sleeper" && c.idle_ms >= 200)
            .map(|c| c.lane)
    })
    .await;
    // Listed as idle, then it wakes up and reads again before the eviction runs.
    env.read_as(&q, "sleeper", 1).await;
    let evicted = env
        .admin
        .evict_idle_consumer(&q, &lane, "sleeper", ms(200))
        .await
        .expect("evict");
    assert_eq!(evicted, None, "a consumer that is no longer idle is kept");
    let owners: Vec<String> = env
        .pending_entries(&q)
        .await
        .into_iter()
        .map(|(_, consumer, _)| consumer)
        .collect();
    assert_eq!(
        owners,
        ["sleeper", "sleeper"],
        "it keeps both entries it read"
    );
    env.finish().await;
}

#[tokio::test]
async fn a_cleanly_stopped_worker_leaves_no_consumer_behind() {
    let env = TestRedis::new().await;
    let q = env.priority_queue("consumer-cleanup");
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());
    let consumer = worker.consumer.clone();
    env.enqueue(&q, NewJob::new("t.once", "x")).await;
    env.stats_until(&q, "the job ran", |s| s.completed == 1)
        .await;
    assert!(
        env.consumers(&q).await.iter().any(|c| c.name == consumer),
        "the running worker is a consumer"
    );
    worker.stop().await;
    let left: Vec<String> = env.consumer_names(&q).await;
    assert!(!left.contains(&consumer), "{consumer} is still in {left:?}");
    env.finish().await;
}

#[tokio::test]
async fn a_consumer_idle_far_past_the_visibility_timeout_with_nothing_pending_is_removed() {
    let env = TestRedis::new().await;
    let q = env.queue("consumer-janitor");
    let entry_id = env.enqueue_entry(&q, NewJob::new("t.done", "x")).await;
    // A consumer of a process that ended long ago: known to the group, holding nothing.
    env.read_as(&q, "gone", 1).await;
    let _: u64 = env
        .cmd(
            redis::cmd("XACK")
                .arg(q.keys().stream(None))
                .arg(WorkerConfig::default().group)
                .arg(&entry_id),
        )
        .await;
    let worker = env.spawn_worker(&q, fast_worker_config(), Runs::default().recorder());
    eventually("the idle consumer is removed", async || {
        let consumers = env.consumers(&q).await;
        (!consumers.iter().any(|c| c.name == "gone")).then_some(())
    })
    .await;
    let names: Vec<String> = env.consumer_names(&q).await;
    assert!(
        names.is_empty() || names == [worker.consumer.clone()],
        "{names:?}"
    );
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_queue_is_listed_again_and_runs_jobs_after_redis_lost_its_data() {
    let env = TestRedis::new().await;
    let q = env.queue("amnesia");
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());
    eventually("the running queue is listed", async || {
        env.admin.open(q.name()).await.ok()
    })
    .await;
    // Redis restarted without its data: every key of the prefix is gone.
    let keys: Vec<String> = env
        .cmd(redis::cmd("KEYS").arg(format!("{}:*", env.prefix)))
        .await;
    let _: u64 = env.cmd(redis::cmd("DEL").arg(&keys)).await;
    assert!(
        env.admin.open(q.name()).await.is_err(),
        "the registry is gone"
    );

    eventually("the live queue is listed again", async || {
        env.admin.open(q.name()).await.ok()
    })
    .await;
    env.enqueue(&q, NewJob::new("t.after", "x")).await;
    env.stats_until(&q, "a new job runs", |s| s.completed == 1)
        .await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_group_that_cannot_be_recreated_is_retried_with_backoff_not_in_a_busy_loop() {
    let env = TestRedis::new().await;
    let q = env.queue("nogroup-noperm");
    // A user of its own, so the server's ACL log counts only this worker's denials.
    let user = format!("t-acl-{}", env.prefix);
    // Removed when the test ends, passed or failed.
    let _user = AclUser(user.clone());
    let _: () = env
        .cmd(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&user)
                .arg("on")
                .arg(">secret-pw")
                .arg("~*")
                .arg("&*")
                .arg("+@all"),
        )
        .await;
    let url = queue_core::testing::redis_url().replacen(
        "redis://",
        &format!("redis://{user}:secret-pw@"),
        1,
    );
    let broker =
        queue_core::Broker::connect(queue_core::BrokerConfig::new(url).prefix(&env.prefix))
            .await
            .expect("connect as the test user");
    let worker = queue_core::worker::worker(
        &broker,
        &broker.queue(q.name()).expect("queue"),
        fast_worker_config(),
        Runs::default().recorder(),
    )
    .expect("worker");
    let consumer = worker.consumer_name().to_owned();
    let stop = queue_core::CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    env.enqueue(&q, NewJob::new("t.first", "x")).await;
    env.stats_until(&q, "the worker runs", |s| s.completed == 1)
        .await;
    assert!(!consumer.is_empty());

    // The group disappears and this worker may no longer create one.
    let _: () = env
        .cmd(redis::cmd("ACL").arg("SETUSER").arg(&user).arg("-xgroup"))
        .await;
    let _: u64 = env
        .cmd(
            redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(q.keys().stream(None))
                .arg(WorkerConfig::default().group),
        )
        .await;
    let denials = async || -> u64 {
        let log: Vec<Vec<redis::Value>> = env.cmd(redis::cmd("ACL").arg("LOG")).await;
        let mut total = 0;
        for entry in log {
            let mut fields = entry.into_iter();
            let (mut count, mut username) = (0u64, String::new());
            while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
                match redis::from_redis_value::<String>(k)
                    .unwrap_or_default()
                    .as_str()
                {
                    "count" => count = redis::from_redis_value(v).unwrap_or(0),
                    "username" => username = redis::from_redis_value(v).unwrap_or_default(),
                    _ => {}
                }
            }
            if username == user {
                total += count;
            }
        }
        total
    };
    eventually("the worker tries to recreate the group", async || {
        (denials().await > 0).then_some(())
    })
    .await;
    let first = denials().await;
    tokio::time::sleep(ms(1000)).await;
    let tries = denials().await - first;
    assert!(
        tries < 30,
        "{tries} attempts to recreate the group in one second: it must back off"
    );
    stop.cancel();
    let _ = running.await;
    env.finish().await;
}

/// An ACL user of one test, deleted when dropped (with a blocking connection, so
/// it also runs when the test panics).
struct AclUser(String);

impl Drop for AclUser {
    fn drop(&mut self) {
        if let Ok(mut conn) =
            redis::Client::open(queue_core::testing::redis_url()).and_then(|c| c.get_connection())
        {
            let _: redis::RedisResult<u64> = redis::cmd("ACL")
                .arg("DELUSER")
                .arg(&self.0)
                .query(&mut conn);
        }
    }
}
