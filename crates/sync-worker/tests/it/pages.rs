//! A run that survives Wispro: a page that fails is retried within the run
//! (its own budget, with backoff), so only a page that keeps failing fails the
//! run; a page that comes back empty before the last is an error of that page;
//! customers added in Wispro during a run are read by a second pass.

use std::collections::BTreeMap;

use store::sync_runs::SyncStatus;
use upstream_sim::wispro::DEFAULT_TOKEN;

use crate::world::{SyncWorld, World, expect_every_customer_once};

#[tokio::test]
async fn three_scattered_wispro_errors_are_retried_in_their_pages_and_the_run_completes() {
    let world = World::new().await;
    let wispro = world.sim.wispro();
    for page in [1, 3, 5] {
        wispro.fail_page(page, Some(1));
    }
    // Three attempts per job, as in production.
    let worker = world.spawn(world.config(DEFAULT_TOKEN)).await;
    let id = world.start_run().await;
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Completed, "{:?}", run.failure);
    assert_eq!(run.pages_done, 5);
    world.assert_every_customer_has_its_user().await;
    assert_eq!(
        wispro.stats().page_requests,
        BTreeMap::from([(1, 2), (2, 1), (3, 2), (4, 1), (5, 2)]),
        "each failed page is read again, and only it"
    );
    let stats = world.stats().await;
    assert_eq!(stats.retried, 0, "the job itself never failed: {stats:?}");
    worker.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn a_page_that_keeps_failing_fails_the_run_naming_the_page_and_each_retry_resumes_at_it() {
    let world = World::new().await;
    let wispro = world.sim.wispro();
    wispro.fail_page(3, None);
    let config = world.config(DEFAULT_TOKEN);
    let (attempts, page_attempts) = (config.worker.max_attempts, config.page_attempts.get());
    let worker = world.spawn(config).await;
    let id = world.start_run().await;
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Failed);
    let failure = run.failure.expect("a reason");
    assert!(
        failure.contains("page 3") && failure.contains("status 500"),
        "{failure}"
    );
    assert_eq!(run.pages_done, 2, "pages before it are kept");
    let requests = wispro.stats().page_requests;
    assert_eq!((requests[&1], requests[&2]), (1, 1), "never restarted");
    assert_eq!(
        requests[&3],
        u64::from(attempts) * u64::from(page_attempts),
        "the page's budget on every attempt of the job"
    );
    worker.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn an_empty_page_before_the_last_is_read_again_and_the_run_reads_every_customer() {
    let world = World::new().await;
    let wispro = world.sim.wispro();
    wispro.empty_page(3, Some(1));
    let worker = world.spawn(world.config(DEFAULT_TOKEN)).await;
    let id = world.start_run().await;
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Completed, "{:?}", run.failure);
    assert_eq!((run.pages_done, run.total_pages), (5, Some(5)));
    world.assert_every_customer_has_its_user().await;
    assert_eq!(wispro.stats().page_requests[&3], 2);
    worker.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn customers_added_at_the_front_during_a_run_are_read_by_a_second_pass() {
    let world = World::new().await;
    let wispro = world.sim.wispro();
    // Page 1 is read before they exist; every later page is shifted by them.
    wispro.insert_front_after(2, 30);
    let worker = world.spawn(world.config(DEFAULT_TOKEN)).await;
    let id = world.start_run().await;
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Completed, "{:?}", run.failure);
    assert_eq!(wispro.clients().len(), 480, "the 30 were inserted");
    world.assert_every_customer_has_its_user().await;
    let expected = expect_every_customer_once(&world);
    assert_eq!(run.created, expected, "{:#?}", run.error_samples.0);
    assert_eq!(world.user_count().await, i64::from(expected));
    worker.stop().await;
    world.finish().await;
}
