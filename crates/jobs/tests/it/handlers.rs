//! A queue carrying several kinds routes each to its typed handler; what no
//! handler takes is dead-lettered, not retried.

use std::sync::{Arc, Mutex};

use jobs::{Handlers, JobKind, v1};
use queue_core::testing::{TestRedis, fast_worker_config};
use queue_core::{Job, JobError, NewJob};

#[tokio::test]
async fn each_kind_of_a_queue_reaches_its_handler_with_the_decoded_payload() {
    let env = TestRedis::new().await;
    let queue = jobs::PAYMENT_CHECKS.open(&env.broker).expect("queue");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (checks, cleanups) = (seen.clone(), seen.clone());
    let handlers = Handlers::new(&jobs::PAYMENT_CHECKS)
        .on(move |check: v1::PaymentStatusCheck, job: Job| {
            checks.lock().expect("lock").push(format!(
                "check {} #{} ({})",
                check.payment(),
                check.check_number,
                job.kind()
            ));
            async { Ok::<(), JobError>(()) }
        })
        .on(move |cleanup: v1::PaymentCleanup, _job: Job| {
            cleanups
                .lock()
                .expect("lock")
                .push(format!("cleanup {}", cleanup.day));
            async { Ok::<(), JobError>(()) }
        });
    let worker = env.spawn_worker(&queue, fast_worker_config(), handlers);

    for job in [
        jobs::new_job(&v1::PaymentStatusCheck::new(7, 2)),
        jobs::new_job(&v1::PaymentCleanup {
            day: "2026-12-01".into(),
        }),
    ] {
        env.producer.enqueue(&queue, job).await.expect("enqueue");
    }
    let stats = env
        .stats_until(&queue, "both jobs completed", |s| s.completed == 2)
        .await;
    assert_eq!(stats.dead_lettered, 0);
    let mut seen = seen.lock().expect("lock").clone();
    seen.sort();
    assert_eq!(
        seen,
        ["check 7 #2 (payment.check)", "cleanup 2026-12-01"],
        "each payload decoded into its own message"
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_kind_no_handler_takes_and_a_payload_that_does_not_decode_are_dead_lettered() {
    let env = TestRedis::new().await;
    let queue = jobs::PAYMENT_CHECKS.open(&env.broker).expect("queue");
    let runs = Arc::new(Mutex::new(0));
    let counter = runs.clone();
    // Only checks have a handler: the cleanup kind is unknown to this worker.
    let handlers =
        Handlers::new(&jobs::PAYMENT_CHECKS).on(move |_: v1::PaymentStatusCheck, _: Job| {
            *counter.lock().expect("lock") += 1;
            async { Ok::<(), JobError>(()) }
        });
    let worker = env.spawn_worker(&queue, fast_worker_config(), handlers);

    let unknown = env
        .producer
        .enqueue(
            &queue,
            jobs::new_job(&v1::PaymentCleanup {
                day: "2026-12-01".into(),
            }),
        )
        .await
        .expect("enqueue");
    // Field 1 as a varint whose continuation never ends: not a PaymentStatusCheck.
    let garbage = env
        .producer
        .enqueue(
            &queue,
            NewJob::new(<v1::PaymentStatusCheck as JobKind>::KIND, vec![0x08, 0xff]),
        )
        .await
        .expect("enqueue");
    let stats = env
        .stats_until(&queue, "both jobs dead-lettered", |s| s.dead_lettered == 2)
        .await;
    assert_eq!((stats.retried, stats.completed), (0, 0), "{stats:?}");
    assert_eq!(*runs.lock().expect("lock"), 0, "no handler ran");

    let letters = env
        .admin
        .dead_letters(&queue, None, 10)
        .await
        .expect("dlq")
        .items;
    let error_of = |id: &str| {
        letters
            .iter()
            .find(|l| l.job_id == id)
            .map(|l| l.error.clone())
            .unwrap_or_else(|| panic!("no dead letter for {id}: {letters:?}"))
    };
    let unknown_error = error_of(unknown.id());
    assert!(
        unknown_error.contains("no handler for job kind \"payment.cleanup\"")
            && unknown_error.contains("payment.check"),
        "{unknown_error}"
    );
    assert!(
        error_of(garbage.id()).contains("does not decode"),
        "{}",
        error_of(garbage.id())
    );
    worker.stop().await;
}
