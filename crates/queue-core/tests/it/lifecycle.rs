//! A job's life through the worker: acknowledgement, retries with backoff,
//! permanent failures, exhausted attempts, and the counters that record it all.

use std::collections::HashSet;
use std::time::Duration;

use queue_core::testing::{
    Run, Runs, TestRedis, fast_worker_config, fast_worker_config_attempts, ms,
};
use queue_core::{
    Backoff, Broker, BrokerConfig, Enqueued, Error, JobError, NewJob, Priority, WorkerConfig,
};

#[tokio::test]
async fn an_acknowledged_job_leaves_the_pending_list_and_the_stream() {
    let env = TestRedis::new().await;
    let q = env.queue("ack");
    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());

    let Enqueued::Added { id, .. } = env.enqueue(&q, NewJob::new("t.ack", "hello")).await else {
        panic!("a plain job is added to the stream");
    };

    let s = env
        .stats_until(&q, "the job is completed", |s| s.completed == 1)
        .await;
    // The completion script acknowledged and deleted the entry in the same step
    // that counted it, so nothing can be pending once it is counted.
    assert_eq!(env.pending(&q).await, 0, "XPENDING after completion");
    assert_eq!(env.xlen(&q.keys().stream(None)).await, 0, "stream length");
    assert_eq!((s.waiting, s.active, s.delayed), (0, 0, 0));
    assert_eq!((s.failed, s.retried, s.failed_runs), (0, 0, 0));

    let all = runs.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].job_id, id);
    assert_eq!(&all[0].payload[..], b"hello");
    assert_eq!((all[0].attempt, all[0].deliveries), (1, 1));

    let done = env.admin.completions(&q, 10).await.expect("completions");
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].job_id.as_str(), done[0].attempt), (id.as_str(), 1));

    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_retryable_error_is_retried_with_growing_backoff_and_the_previous_error() {
    let env = TestRedis::new().await;
    let q = env.queue("retry");
    // Factor 4 keeps consecutive delays at least 160 ms apart even with the worst
    // jitter draws, more than the scheduling noise of a heavily loaded machine.
    let backoff = Backoff {
        initial: ms(80),
        factor: 4.0,
        max: Duration::from_secs(10),
        jitter: 0.2,
    };
    let config = WorkerConfig {
        max_attempts: 4,
        backoff,
        ..fast_worker_config()
    };
    let runs = Runs::default();
    let worker = env.spawn_worker(
        &q,
        config,
        runs.answering(|run: &Run| {
            if run.attempt < 4 {
                return Err(JobError::retry(anyhow::anyhow!(
                    "boom on attempt {}",
                    run.attempt
                )));
            }
            Ok(())
        }),
    );
    env.enqueue(&q, NewJob::new("t.flaky", "x")).await;

    let s = env
        .stats_until(&q, "the fourth attempt succeeded", |s| s.completed == 1)
        .await;
    assert_eq!((s.retried, s.failed_runs, s.dead_lettered), (3, 3, 0));

    let all = runs.all();
    let attempts: Vec<u32> = all.iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    let errors: Vec<&str> = all.iter().map(|r| r.last_error.as_str()).collect();
    assert_eq!(
        errors,
        [
            "",
            "boom on attempt 1",
            "boom on attempt 2",
            "boom on attempt 3"
        ]
    );

    let gaps: Vec<Duration> = all
        .windows(2)
        .map(|w| w[1].started - w[0].started)
        .collect();
    for (i, gap) in gaps.iter().enumerate() {
        // A retry never starts before its backoff (lowest jitter draw) has passed.
        let floor = backoff.initial.mul_f64(backoff.factor.powi(i as i32) * 0.8);
        assert!(
            *gap >= floor,
            "gap {i} was {gap:?}, below {floor:?}: {gaps:?}"
        );
    }
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2],
        "backoff gaps must grow: {gaps:?}"
    );

    let done = env.admin.completions(&q, 10).await.expect("completions");
    assert_eq!(done[0].attempt, 4, "the done record names the last attempt");
    env.assert_drained(&q).await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_permanent_error_dead_letters_the_job_at_once() {
    let env = TestRedis::new().await;
    let q = env.queue("permanent");
    // Plenty of attempts left: only the kind of error may stop the retries.
    let config = fast_worker_config_attempts(5);
    let runs = Runs::default();
    let worker = env.spawn_worker(
        &q,
        config,
        runs.answering(|_run: &Run| {
            Err(JobError::permanent(
                anyhow::anyhow!("card declined").context("charging customer 42"),
            ))
        }),
    );
    let Enqueued::Added { id, entry_id } = env.enqueue(&q, NewJob::new("t.charge", "42")).await
    else {
        panic!("a plain job is added to the stream");
    };

    let s = env
        .stats_until(&q, "the job is dead-lettered", |s| s.dead_lettered == 1)
        .await;
    assert_eq!(
        (s.failed, s.failed_runs, s.retried, s.completed),
        (1, 1, 0, 0)
    );
    // Nothing is left anywhere that could run it a second time.
    env.assert_drained(&q).await;
    assert_eq!(runs.len(), 1, "a permanent error is never retried");

    let letters = env.dead_letters(&q).await;
    assert_eq!(letters.len(), 1);
    let dead = &letters[0];
    assert_eq!(dead.job_id, id);
    assert_eq!(dead.kind, "t.charge");
    assert_eq!(dead.error, "charging customer 42: card declined");
    assert_eq!(dead.attempts, Some(1));
    assert_eq!(dead.origin, entry_id);
    let envelope = dead.envelope.as_ref().expect("the envelope is kept");
    assert_eq!(&envelope.payload[..], b"42");

    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn exhausted_attempts_move_the_job_to_the_dead_letter_stream_with_the_last_error() {
    let env = TestRedis::new().await;
    let q = env.queue("exhausted");
    // The job's own limit (3) wins over the worker's default (10).
    let config = fast_worker_config_attempts(10);
    let runs = Runs::default();
    let worker = env.spawn_worker(
        &q,
        config,
        runs.answering(|run: &Run| {
            Err(JobError::retry(anyhow::anyhow!("failure {}", run.attempt)))
        }),
    );
    let id = env
        .enqueue(&q, NewJob::new("t.doomed", "x").max_attempts(3))
        .await
        .id()
        .to_owned();

    let s = env
        .stats_until(&q, "the job is dead-lettered", |s| s.dead_lettered == 1)
        .await;
    assert_eq!((s.retried, s.failed_runs, s.completed), (2, 3, 0));
    env.assert_drained(&q).await;
    let attempts: Vec<u32> = runs.all().iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);

    let dead = env.admin.dead_letter(&q, &id).await.expect("dead letter");
    assert_eq!(dead.error, "failure 3");
    assert_eq!(dead.attempts, Some(3));
    let envelope = dead.envelope.expect("the envelope is kept");
    assert_eq!(
        (envelope.attempt, envelope.last_error.as_str()),
        (3, "failure 2")
    );

    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn stats_count_exactly_what_happened_in_a_mixed_run() {
    let env = TestRedis::new().await;
    let q = env.queue("mixed");
    let (ok, bad, flaky) = (10, 3, 4);
    let runs = Runs::default();
    let worker = env.spawn_worker(
        &q,
        fast_worker_config(),
        runs.answering(|run: &Run| match run.kind.as_str() {
            "t.bad" => Err(JobError::permanent(anyhow::anyhow!("bad input"))),
            "t.flaky" if run.attempt == 1 => Err(JobError::retry(anyhow::anyhow!("blip"))),
            _ => Ok(()),
        }),
    );
    let jobs = (0..ok)
        .map(|_| NewJob::new("t.ok", "x"))
        .chain((0..bad).map(|_| NewJob::new("t.bad", "x")))
        .chain((0..flaky).map(|_| NewJob::new("t.flaky", "x")));
    env.producer
        .enqueue_many(&q, jobs)
        .await
        .expect("enqueue many");

    let s = env
        .stats_until(&q, "every job is settled", |s| {
            s.completed == ok + flaky && s.dead_lettered == bad
        })
        .await;
    assert_eq!(s.completed, ok + flaky);
    assert_eq!(s.dead_lettered, bad);
    assert_eq!(s.failed, bad, "dead letters kept");
    assert_eq!(s.retried, flaky);
    assert_eq!(s.failed_runs, bad + flaky);
    assert_eq!(s.reclaimed, 0);
    assert_eq!((s.waiting, s.active, s.delayed), (0, 0, 0));
    assert!(!s.paused);
    assert_eq!(s.consumers, 1);
    assert_eq!(runs.len() as u64, ok + bad + 2 * flaky);

    let consumers = env.consumers(&q).await;
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    assert_eq!(consumers[0].name, worker.consumer);
    assert_eq!(
        (consumers[0].pending, consumers[0].lane.as_str()),
        (0, "normal")
    );

    let done = env.admin.completions(&q, 100).await.expect("completions");
    assert_eq!(done.len() as u64, ok + flaky);
    assert_eq!(done.iter().filter(|c| c.attempt == 2).count() as u64, flaky);
    assert!(done.iter().all(|c| c.kind == "t.ok" || c.kind == "t.flaky"));
    let dead = env.dead_letters(&q).await;
    assert!(dead.iter().all(|d| d.kind == "t.bad"));

    // The queue is listed and opens by name with its stats.
    let listed = env.admin.queues().await.expect("queues");
    assert_eq!(
        listed.iter().map(|q| q.name()).collect::<Vec<_>>(),
        ["mixed"]
    );
    let opened = env.admin.open("mixed").await.expect("open");
    assert_eq!(env.stats(&opened).await.completed, ok + flaky);
    assert!(matches!(
        env.admin.open("nope").await,
        Err(Error::NoSuchQueue(_))
    ));

    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn enqueue_many_adds_plain_delayed_and_deduplicated_jobs_in_order() {
    let env = TestRedis::new().await;
    let q = env.queue("many");

    // A job the queue cannot take fails the whole call before anything is sent.
    let refused = env
        .producer
        .enqueue_many(
            &q,
            [
                NewJob::new("t.a", "x"),
                NewJob::new("t.a", "x").priority(Priority::High),
            ],
        )
        .await;
    assert!(matches!(refused, Err(Error::NoPriorityLanes { .. })));
    assert_eq!(env.stats(&q).await.waiting, 0);

    let mut jobs: Vec<NewJob> = (0..5)
        .map(|i| NewJob::new("t.plain", format!("{i}")))
        .collect();
    jobs.push(NewJob::new("t.later", "d").delay(ms(50)));
    jobs.push(NewJob::new("t.once", "first").dedup_key("k", Duration::from_secs(60)));
    jobs.push(NewJob::new("t.once", "second").dedup_key("k", Duration::from_secs(60)));
    let out = env
        .producer
        .enqueue_many(&q, jobs)
        .await
        .expect("enqueue many");

    assert_eq!(out.len(), 8);
    let entry_ids: Vec<&str> = out[..5]
        .iter()
        .map(|e| match e {
            Enqueued::Added { entry_id, .. } => entry_id.as_str(),
            other => panic!("expected Added, got {other:?}"),
        })
        .collect();
    let mut sorted = entry_ids.clone();
    sorted.sort_by_key(|id| {
        let (ms, seq) = id.split_once('-').expect("entry id");
        (
            ms.parse::<u64>().expect("ms"),
            seq.parse::<u64>().expect("seq"),
        )
    });
    assert_eq!(entry_ids, sorted, "results come back in enqueue order");
    assert!(matches!(out[5], Enqueued::Scheduled { .. }), "{:?}", out[5]);
    assert!(matches!(out[6], Enqueued::Added { .. }), "{:?}", out[6]);
    assert_eq!(
        out[7],
        Enqueued::Duplicate {
            id: out[6].id().to_owned()
        }
    );

    let runs = Runs::default();
    let worker = env.spawn_worker(&q, fast_worker_config(), runs.recorder());
    env.stats_until(&q, "the seven distinct jobs completed", |s| {
        s.completed == 7 && s.delayed == 0
    })
    .await;
    let ran: HashSet<String> = runs.all().into_iter().map(|r| r.job_id).collect();
    let expected: HashSet<String> = out[..7].iter().map(|e| e.id().to_owned()).collect();
    assert_eq!(ran, expected);
    assert_eq!(runs.len(), 7, "the duplicate never ran");

    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn connecting_to_a_closed_port_reports_unreachable_without_the_password() {
    // Bind then drop: the port is free and nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = BrokerConfig::new(format!("redis://app:s3cret@127.0.0.1:{port}"));
    config.connect_timeout = ms(500);
    let err = Broker::connect(config)
        .await
        .expect_err("nothing listens on the port");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("s3cret"), "the password leaked: {text}");
}
