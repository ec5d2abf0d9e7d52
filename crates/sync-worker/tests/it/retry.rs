//! A sync run dead-lettered and retried by an operator (`Admin::retry_dead`,
//! as the admin API and `queuectl retry` do; one or all): the run goes back
//! to `running`, keeps its earlier error, resumes after its last finished page
//! and completes.

use std::time::Duration;

use queue_core::testing::eventually;
use store::sync_runs::SyncStatus;
use upstream_sim::wispro::DEFAULT_TOKEN;

use crate::world::{SyncWorld, World};

/// `sync_runs_finished_total{status}` as `/metrics` shows it (the process-wide
/// recorder; `cargo test` runs every test of this binary in one process, so
/// counts are compared before and after).
fn runs_finished(status: &str) -> u64 {
    let wanted = format!("sync_runs_finished_total{{status=\"{status}\"}} ");
    telemetry::metrics_handle()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

async fn a_dead_lettered_run_runs_again_when_retried(all: bool) {
    let (failed_before, completed_before) = (runs_finished("failed"), runs_finished("completed"));
    let world = World::new().await;
    let wispro = world.sim.wispro();
    wispro.fail_page(3, None);
    let mut config = world.config(DEFAULT_TOKEN);
    config.worker.max_attempts = 1;
    let worker = world.spawn(config).await;
    let id = world.start_run().await;
    let failed = world.run_until_done(id).await;
    assert_eq!(failed.status, SyncStatus::Failed);
    assert_eq!(failed.pages_done, 2);
    let earlier = failed.failure.expect("a reason");
    let dead = eventually("the run's job is a dead letter", async || {
        let page = world
            .redis
            .admin
            .dead_letters(&world.queue, None, 10)
            .await
            .ok()?;
        page.items.into_iter().next()
    })
    .await;

    // Wispro is fixed; slower, so that the reopened run is seen running.
    wispro.update_knobs(|k| k.fail_pages.clear());
    wispro.set_latency(Duration::from_millis(200));
    if all {
        assert_eq!(world.retry_all_dead().await, 1);
    } else {
        world.retry_dead(&dead.id).await;
    }
    world
        .run_until(id, "the run is running again", |run| {
            run.status == SyncStatus::Running
        })
        .await;
    let run = world
        .run_until(id, "the run completed", |run| {
            run.status != SyncStatus::Running
        })
        .await;
    assert_eq!(run.status, SyncStatus::Completed, "{:?}", run.failure);
    assert_eq!(run.pages_done, 5);
    assert_eq!(run.failure, None);
    // Counted just after the row's update that the test saw; other tests of
    // this process may end runs too: at least ours counted.
    eventually("the failed and the completed run counted", async || {
        (runs_finished("failed") > failed_before && runs_finished("completed") > completed_before)
            .then_some(())
    })
    .await;
    assert!(
        run.error_samples.0.iter().any(|s| s.contains(&earlier)),
        "the earlier failure is kept: {:#?}",
        run.error_samples.0
    );
    world.assert_every_customer_has_its_user().await;
    let requests = wispro.stats().page_requests;
    assert_eq!(
        (requests[&1], requests[&2]),
        (1, 1),
        "resumed after its last page, not restarted"
    );
    worker.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn a_dead_lettered_run_retried_by_an_operator_resumes_after_its_last_page_and_completes() {
    a_dead_lettered_run_runs_again_when_retried(false).await;
}

#[tokio::test]
async fn retrying_every_dead_letter_resumes_a_dead_lettered_run_too() {
    a_dead_lettered_run_runs_again_when_retried(true).await;
}
