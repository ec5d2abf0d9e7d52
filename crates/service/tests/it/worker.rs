use std::sync::Arc;

use tokio::sync::{Notify, Semaphore};

use queue_core::testing::TestRedis;
use queue_core::{Job, JobError, NewJob};
use service::WorkerService;
use service::testing::{Running, base_config, fast_worker_config, http_get};
use store::testing::TestDb;

/// A handler that succeeds at once.
async fn done(_job: Job) -> Result<(), JobError> {
    Ok(())
}

/// A worker of the QR queue on the test's Redis prefix and database.
pub(crate) async fn connect(redis: &TestRedis, db: &TestDb) -> WorkerService {
    WorkerService::connect(
        &base_config(&redis.prefix, &db.url),
        &jobs::QR,
        fast_worker_config(&jobs::QR),
    )
    .await
    .expect("the worker connects")
}

#[tokio::test]
async fn healthz_readyz_and_metrics_answer_on_the_bound_port_until_shutdown() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let svc = connect(&redis, &db).await;
    let bound = svc.health_addr();
    let running = Running::spawn(svc.start(done).expect("the worker is created"));
    assert_eq!(running.addr, bound);
    assert_ne!(
        running.addr.port(),
        0,
        "port 0 was replaced by the bound port"
    );

    let (status, body) = http_get(running.addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(running.addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    for check in [r#""redis":"ok""#, r#""postgres":"ok""#] {
        assert!(body.contains(check), "{check} in {body}");
    }
    let (status, _) = http_get(running.addr, "/metrics").await;
    assert_eq!(status, 200);

    let addr = running.addr;
    running.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the health server stops with the worker"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn readyz_answers_503_naming_a_failing_extra_check() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let svc = connect(&redis, &db)
        .await
        .readiness_check("storage", || async { Err("not writable".to_owned()) });
    let running = Running::spawn(svc.start(done).expect("the worker is created"));

    let (status, body) = http_get(running.addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""storage":"not writable""#), "{body}");
    assert!(body.contains(r#""redis":"ok""#), "{body}");
    assert!(
        running.is_running(),
        "a failing check does not stop the worker"
    );

    running.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn shutdown_lets_a_running_job_finish_before_the_service_stops() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let started = Arc::new(Notify::new());
    let release = Arc::new(Semaphore::new(0));
    let handler = {
        let (started, release) = (started.clone(), release.clone());
        move |_job: Job| {
            let (started, release) = (started.clone(), release.clone());
            async move {
                started.notify_one();
                let _permit = release.acquire().await.expect("the semaphore stays open");
                Ok::<_, JobError>(())
            }
        }
    };
    let svc = connect(&redis, &db).await;
    let queue = svc.queue().clone();
    let running = Running::spawn(svc.start(handler).expect("the worker is created"));
    redis
        .producer
        .enqueue(&queue, NewJob::new("test.slow", "payload"))
        .await
        .expect("enqueue");
    started.notified().await;

    // Shutdown while the job runs; the job is released only afterwards.
    running.cancel();
    release.add_permits(1);
    running.join().await.expect("the service stops cleanly");

    let stats = redis.stats(&queue).await;
    assert_eq!(
        (stats.completed, stats.active, stats.waiting),
        (1, 0, 0),
        "the running job was finished, not abandoned: {stats:#?}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_queue_worker_that_fails_stops_the_health_server_too() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let svc = connect(&redis, &db).await;
    // A string where the stream should be: the worker cannot create its group.
    let stream = svc.queue().keys().stream(None);
    redis
        .cmd::<()>(redis::cmd("SET").arg(&stream).arg("not a stream"))
        .await;
    let running = Running::spawn(svc.start(done).expect("the worker is created"));
    let addr = running.addr;

    let err = running.join().await.expect_err("the worker cannot start");
    assert!(format!("{err:#}").contains("queue worker"), "{err:#}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the health server stopped with it"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn connection_errors_name_the_url_with_its_password_masked() {
    let redis = TestRedis::new().await;
    let mut base = base_config(
        &redis.prefix,
        "postgres://postgres:hunter2@127.0.0.1:5432/no_such_database",
    );
    let err = WorkerService::connect(&base, &jobs::QR, fast_worker_config(&jobs::QR))
        .await
        .expect_err("the database does not exist");
    let text = format!("{err:#}");
    assert!(
        text.contains(
            "connecting to PostgreSQL at postgres://postgres:***@127.0.0.1:5432/no_such_database"
        ),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    base.redis_url = service::SecretUrl::new("redis://:hunter2@127.0.0.1:1");
    let err = WorkerService::connect(&base, &jobs::QR, fast_worker_config(&jobs::QR))
        .await
        .expect_err("nothing listens on port 1");
    let text = format!("{err:#}");
    assert!(
        text.contains("connecting to Redis at redis://:***@127.0.0.1:1"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn a_declared_repeating_job_is_enqueued_and_run_by_the_typed_handlers() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let every = queue_core::Every::daily_at(0, 0).expect("valid");
    let tick = queue_core::RepeatingJob::new("daily-qr", every, |_| {
        jobs::new_job(&jobs::v1::GenerateQr {
            person_id: 0,
            content: "tick".into(),
            path: "qr/tick.png".into(),
        })
    })
    .expect("valid");
    let svc = connect(&redis, &db).await.repeat(tick);
    let handlers = svc
        .handlers()
        .on(move |qr: jobs::v1::GenerateQr, job: Job| {
            recorded
                .lock()
                .expect("lock")
                .push((qr.content, job.id().to_owned()));
            async { Ok::<(), JobError>(()) }
        });
    let running = Running::spawn(svc.start(handlers).expect("the worker is created"));

    let queue = jobs::QR.open(&redis.broker).expect("queue");
    let stats = redis
        .stats_until(&queue, "the repeating job ran", |s| s.completed == 1)
        .await;
    assert_eq!(stats.repeating.len(), 1, "{stats:?}");
    let (content, id) = seen.lock().expect("lock")[0].clone();
    assert_eq!(content, "tick");
    assert_eq!(id, stats.repeating[0].last_job_id);
    running.stop().await;
    db.cleanup().await;
}

/// The value of a `/metrics` series with exactly these labels, if shown.
fn series(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn the_queue_counts_sampled_are_gauges_labelled_with_the_queue() {
    // The recorder first: gauges set before it exists go nowhere.
    let metrics = telemetry::metrics_handle();
    let redis = TestRedis::new().await;
    let queue = redis.queue("gauged");
    redis.admin.create_groups(&queue).await.expect("groups");
    for n in 0..3 {
        redis
            .producer
            .enqueue(&queue, NewJob::new("test.waits", format!("{n}")))
            .await
            .expect("enqueue");
    }
    redis
        .producer
        .enqueue(
            &queue,
            NewJob::new("test.later", "x").delay(std::time::Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue a delayed job");
    redis.admin.pause(&queue).await.expect("pause");

    // One sample, then the stop that is already due.
    service::gauges::export(
        redis.admin.clone(),
        queue.clone(),
        service::gauges::EVERY,
        std::future::ready(()),
    )
    .await;

    let shown = metrics.render();
    let get = |name: &str| series(&shown, &format!(r#"{name}{{queue="gauged"}}"#));
    assert_eq!(get("rsq_queue_waiting"), Some(3.0), "{shown}");
    assert_eq!(get("rsq_queue_delayed"), Some(1.0), "{shown}");
    assert_eq!(get("rsq_queue_dead_letters"), Some(0.0), "{shown}");
    assert_eq!(get("rsq_queue_paused"), Some(1.0), "{shown}");
    assert!(
        get("rsq_queue_oldest_waiting_age_seconds").is_some_and(|age| age >= 0.0),
        "{shown}"
    );
}

#[tokio::test]
async fn a_running_worker_shows_its_queue_gauges_on_its_metrics() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let svc = connect(&redis, &db).await;
    let queue = svc.queue().clone();
    redis.admin.pause(&queue).await.expect("pause");
    let running = Running::spawn(svc.start(done).expect("the worker is created"));

    // Sampled as the worker starts; the label is the queue's name (one
    // process per test under nextest, so no other worker of `qr` here).
    let wanted = format!(r#"rsq_queue_paused{{queue="{}"}}"#, queue.name());
    queue_core::testing::eventually("the paused queue's gauge", async || {
        let (_, metrics) = http_get(running.addr, "/metrics").await;
        (series(&metrics, &wanted) == Some(1.0)).then_some(())
    })
    .await;

    running.stop().await;
    db.cleanup().await;
}
