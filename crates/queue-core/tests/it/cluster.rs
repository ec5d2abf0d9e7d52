//! The engine on a real Redis Cluster (three masters started by the test): one
//! queue on each master, each running a plain job, a delayed job, a retry, a
//! dead letter and a job reclaimed from a consumer that died; then the admin
//! operations that cover every master (listing, retrying a dead letter, a purge
//! that releases unique keys, destroying every key).

use std::collections::BTreeSet;

use queue_core::testing::{
    PrivateCluster, TestRedis, fast_worker_config, fast_worker_config_attempts, ms,
};
use queue_core::{Job, JobError, JobState, MinuteStats, NewJob, Priority, Queue, WorkerConfig};

/// Queue names whose hash tags land on three different masters.
async fn one_queue_per_master(cluster: &PrivateCluster) -> Vec<String> {
    let mut by_master = std::collections::BTreeMap::new();
    for n in 0.. {
        let name = format!("cq{n}");
        let port = cluster.master_of(&format!("{{{name}}}")).await;
        by_master.entry(port).or_insert(name);
        if by_master.len() == 3 {
            break;
        }
    }
    by_master.into_values().collect()
}

async fn handler(job: Job) -> Result<(), JobError> {
    match job.kind() {
        "t.flaky" if job.attempt() == 1 => Err(JobError::retry(anyhow::anyhow!("first try fails"))),
        "t.doomed" => Err(JobError::permanent(anyhow::anyhow!("never works"))),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn jobs_run_retry_wait_dead_letter_and_are_reclaimed_on_every_master_of_a_cluster() {
    let cluster = PrivateCluster::start().await;
    let env = TestRedis::on(cluster.broker_config()).await;
    assert!(env.broker.is_cluster());
    let names = one_queue_per_master(&cluster).await;
    let queues: Vec<Queue> = names.iter().map(|n| env.queue(n)).collect();

    // A consumer that read each queue's first job and died with it.
    for q in &queues {
        env.enqueue(q, NewJob::new("t.orphan", "held by the dead"))
            .await;
        env.read_as(q, "dead-consumer", 1).await;
    }
    let config = fast_worker_config_attempts(3);
    let workers: Vec<_> = queues
        .iter()
        .map(|q| env.spawn_worker(q, config.clone(), handler))
        .collect();
    for q in &queues {
        let jobs = [
            NewJob::new("t.plain", "now"),
            // Unique keys follow their jobs through scripts that name them
            // from the envelope (promote), on the queue's own slot.
            NewJob::new("t.later", "in 200 ms")
                .delay(ms(200))
                .unique_until_settled("later"),
            NewJob::new("t.flaky", "once more").unique_until_settled("flaky"),
            NewJob::new("t.doomed", "dead letter"),
        ];
        env.producer.enqueue_many(q, jobs).await.expect("enqueue");
    }

    for q in &queues {
        let s = env
            .stats_until(q, "four jobs completed and one dead-lettered", |s| {
                s.completed == 4 && s.dead_lettered == 1
            })
            .await;
        assert_eq!((s.retried, s.reclaimed), (1, 1), "{}: {s:#?}", q.name());
        assert_eq!((s.waiting, s.active, s.delayed), (0, 0, 0), "{s:#?}");
        let done: BTreeSet<String> = env
            .admin
            .completions(q, 10)
            .await
            .expect("completions")
            .into_iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(
            done,
            ["t.flaky", "t.later", "t.orphan", "t.plain"]
                .map(String::from)
                .into(),
        );
        for key in ["later", "flaky"] {
            let holder = env.admin.unique_holder(q, key).await.expect("get");
            assert_eq!(holder, None, "{}: {key} released", q.name());
        }
        // A purge releases the keys of what it deletes in the same script.
        let purged = NewJob::new("t.purged", "x")
            .delay(ms(3_600_000))
            .unique_until_settled("purged");
        env.enqueue(q, purged).await;
        assert_eq!(env.admin.purge(q).await.expect("purge").delayed, 1);
        let holder = env.admin.unique_holder(q, "purged").await.expect("get");
        assert_eq!(holder, None, "{}: released by the purge", q.name());

        // The workers' history and the listings, on the queue's own master.
        let history = env.admin.history(q, 10).await.expect("history");
        let total = MinuteStats::sum(&history);
        assert_eq!(
            (total.completed, total.failed, total.dead_lettered),
            (4, 2, 1),
            "{}: {history:?}",
            q.name()
        );
        let page = env.admin.jobs(q, JobState::Completed, None, 10).await;
        assert_eq!(page.expect("completed").jobs.len(), 4);
        let failed = env.admin.jobs(q, JobState::Failed, None, 10).await;
        let doomed = failed.expect("failed").jobs.remove(0);
        let found = env.admin.find_job(q, &doomed.id).await.expect("find");
        assert_eq!(found.map(|j| j.summary.state), Some(JobState::Failed));
        // A parked job promoted runs now, its key following it; another deleted.
        let parked = |key: &str| {
            NewJob::new("t.parked", "x")
                .delay(ms(3_600_000))
                .unique_until_settled(key)
        };
        let promoted = env.enqueue(q, parked("promoted")).await;
        let deleted = env.enqueue(q, parked("deleted")).await;
        let page = env.admin.jobs(q, JobState::Delayed, None, 10).await;
        assert_eq!(page.expect("delayed").jobs.len(), 2);
        assert!(env.admin.promote(q, promoted.id()).await.expect("promote"));
        env.completed_until(q, promoted.id()).await;
        assert!(env.admin.delete_job(q, deleted.id()).await.expect("delete"));
        for key in ["promoted", "deleted"] {
            let holder = env.admin.unique_holder(q, key).await.expect("get");
            assert_eq!(holder, None, "{}: {key} released", q.name());
        }
    }

    // Listing reads the registry, wherever its slot lives.
    let listed: BTreeSet<String> = env
        .admin
        .queues()
        .await
        .expect("queues")
        .iter()
        .map(|q| q.name().to_owned())
        .collect();
    assert_eq!(listed, names.iter().cloned().collect());

    // A dead letter retried from the admin API runs again (and fails again).
    let q = &queues[0];
    let page = env.admin.dead_letters(q, None, 10).await.expect("letters");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].kind, "t.doomed");
    env.admin
        .retry_dead(q, &page.items[0].id)
        .await
        .expect("retry the dead letter");
    env.stats_until(q, "the retried letter failed again", |s| {
        s.dead_lettered == 2
    })
    .await;

    for w in workers {
        w.stop().await;
    }
    // Destroy scans every master: `finish` checks that no key of the prefix is
    // left on any of them.
    let keys: Vec<String> = env
        .cmd(redis::cmd("KEYS").arg(format!("{}:*", env.prefix)))
        .await;
    let slots: BTreeSet<u16> = {
        let mut ports = BTreeSet::new();
        for k in &keys {
            ports.insert(cluster.master_of(k).await);
        }
        ports
    };
    assert_eq!(slots.len(), 3, "keys on all three masters: {keys:?}");
    env.finish().await;
}

#[tokio::test]
async fn a_worker_blocked_on_all_priority_lanes_of_a_cluster_queue_wakes_for_new_jobs() {
    // The blocking read names the three lanes' streams in one command, on a
    // cluster connection of its own: one slot, so one node answers it.
    let cluster = PrivateCluster::start().await;
    let env = TestRedis::on(cluster.broker_config()).await;
    let q = env.priority_queue("blocked");
    let config = WorkerConfig {
        block: ms(5_000),
        // Nothing to reclaim: the read blocks for the whole 5 s.
        reclaim_interval: std::time::Duration::from_secs(10),
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, handler);
    // Redis lists a consumer on a lane once it was handed an entry there.
    let lanes = [Priority::High, Priority::Normal, Priority::Low];
    let first = lanes.map(|p| NewJob::new("t.plain", "first").priority(p));
    env.producer.enqueue_many(&q, first).await.expect("enqueue");
    env.stats_until(&q, "the first jobs completed", |s| s.completed == 3)
        .await;
    env.until_blocked(&q, &worker.consumer).await;
    let more = (0..30).map(|n| NewJob::new("t.plain", format!("job {n}")).priority(lanes[n % 3]));
    env.producer
        .enqueue_many(&q, more)
        .await
        .expect("enqueue while the worker blocks");
    let s = env
        .stats_until(&q, "all jobs completed", |s| s.completed == 33)
        .await;
    assert_eq!((s.waiting, s.active, s.failed), (0, 0, 0), "{s:#?}");
    worker.stop().await;
    env.finish().await;
}
