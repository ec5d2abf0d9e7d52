//! Jobs by state and by id, and an operator's moves on one job: promote a
//! delayed job, delete a waiting or delayed one.

use std::time::Duration;

use queue_core::testing::{TestRedis, fast_worker_config_attempts};
use queue_core::{Enqueued, Error, Job, JobError, JobPage, JobState, NewJob, Priority, Queue};

const HOUR: Duration = Duration::from_secs(3600);

async fn handler(job: Job) -> Result<(), JobError> {
    match job.kind() {
        "t.doomed" => Err(JobError::permanent(anyhow::anyhow!("never works"))),
        _ => Ok(()),
    }
}

/// Every page of a state, `limit` at a time, checking that each page but the
/// last is full.
async fn all_pages(env: &TestRedis, q: &Queue, state: JobState, limit: usize) -> Vec<JobPage> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = env
            .admin
            .jobs(q, state, after.as_deref(), limit)
            .await
            .unwrap_or_else(|e| panic!("{state} after {after:?}: {e}"));
        after = page.next.clone();
        let last = after.is_none();
        assert!(last || page.jobs.len() == limit, "{state}: a short page");
        pages.push(page);
        if last {
            return pages;
        }
    }
}

async fn ids_in(env: &TestRedis, q: &Queue, state: JobState, limit: usize) -> Vec<String> {
    all_pages(env, q, state, limit)
        .await
        .into_iter()
        .flat_map(|p| p.jobs)
        .map(|j| {
            assert_eq!(j.state, state, "{j:?}");
            j.id
        })
        .collect()
}

fn ids(enqueued: &[Enqueued]) -> Vec<String> {
    enqueued.iter().map(|e| e.id().to_owned()).collect()
}

#[tokio::test]
async fn jobs_are_listed_by_state_page_by_page_and_found_by_id_in_each_state() {
    let env = TestRedis::new().await;
    let q = env.priority_queue("browse");

    // Completed and failed ones first, by a worker that then stops.
    let worker = env.spawn_worker(&q, fast_worker_config_attempts(1), handler);
    let done = ids(&env
        .producer
        .enqueue_many(&q, (0..3).map(|i| NewJob::new("t.ok", format!("ok {i}"))))
        .await
        .expect("enqueue"));
    let failed = ids(&env
        .producer
        .enqueue_many(
            &q,
            (0..2).map(|i| NewJob::new("t.doomed", format!("bad {i}"))),
        )
        .await
        .expect("enqueue"));
    env.stats_until(&q, "three completed, two dead-lettered", |s| {
        s.completed == 3 && s.dead_lettered == 2
    })
    .await;
    worker.stop().await;

    // Waiting in every lane, delayed ones, and one read by a consumer that died.
    let mut waiting = Vec::new();
    for (priority, n) in [
        (Priority::Low, 2),
        (Priority::High, 2),
        (Priority::Normal, 3),
    ] {
        let jobs = (0..n).map(|i| {
            NewJob::new("t.wait", format!("{priority:?} {i}"))
                .priority(priority)
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
        });
        waiting.push(ids(&env
            .producer
            .enqueue_many(&q, jobs)
            .await
            .expect("enqueue")));
    }
    let delayed = ids(&env
        .producer
        .enqueue_many(
            &q,
            (0..3_u32).map(|i| NewJob::new("t.later", "x").delay(HOUR * (3 - i))),
        )
        .await
        .expect("enqueue"));
    env.read_as(&q, "ghost", 1).await;
    let active = waiting[2][0].clone();

    // Lane by lane, highest first, each in order; pages of 2 join up.
    let expected_waiting: Vec<String> =
        [&waiting[1][..], &waiting[2][1..], &waiting[0][..]].concat();
    assert_eq!(
        ids_in(&env, &q, JobState::Waiting, 2).await,
        expected_waiting
    );
    assert_eq!(
        ids_in(&env, &q, JobState::Waiting, 1000).await,
        expected_waiting
    );
    let act = env
        .admin
        .jobs(&q, JobState::Active, None, 10)
        .await
        .expect("active");
    assert_eq!(act.jobs.len(), 1, "{act:?}");
    assert_eq!(
        (act.jobs[0].id.as_str(), act.jobs[0].consumer.as_deref()),
        (active.as_str(), Some("ghost"))
    );
    // By due time: the last enqueued is due first.
    let mut by_due = delayed.clone();
    by_due.reverse();
    assert_eq!(ids_in(&env, &q, JobState::Delayed, 2).await, by_due);
    // Newest first.
    let mut newest_failed = failed.clone();
    newest_failed.reverse();
    assert_eq!(ids_in(&env, &q, JobState::Failed, 1).await, newest_failed);
    let mut completed = ids_in(&env, &q, JobState::Completed, 2).await;
    completed.sort();
    let mut done_sorted = done.clone();
    done_sorted.sort();
    assert_eq!(completed, done_sorted);

    // One job by id, in each state.
    let find = async |id: &str| {
        env.admin
            .find_job(&q, id)
            .await
            .expect("find")
            .unwrap_or_else(|| panic!("job {id} not found"))
    };
    let w = find(&waiting[1][1]).await;
    assert_eq!(
        (
            w.summary.state,
            w.summary.lane.as_str(),
            w.summary.kind.as_str()
        ),
        (JobState::Waiting, "high", "t.wait")
    );
    assert_eq!(w.payload, b"High 1");
    assert_eq!(
        w.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert!(w.headers.iter().any(|(k, _)| k == "traceparent"), "{w:?}");
    let a = find(&active).await;
    assert_eq!(
        (a.summary.state, a.summary.consumer.as_deref(), a.deliveries),
        (JobState::Active, Some("ghost"), Some(1))
    );
    let d = find(&delayed[0]).await;
    assert_eq!(d.summary.state, JobState::Delayed);
    assert!(
        d.summary
            .due_at_ms
            .is_some_and(|due| due > d.summary.enqueued_at_ms.unwrap_or(0) + 2 * 3_500_000),
        "{d:?}"
    );
    let f = find(&failed[0]).await;
    assert_eq!(
        (
            f.summary.state,
            f.summary.error.as_deref(),
            f.summary.attempts
        ),
        (JobState::Failed, Some("never works"), Some(1))
    );
    assert_eq!(f.payload, b"bad 0");
    // A dead letter's entry id reaches it too (the only handle of one that does
    // not decode).
    let by_entry = find(f.entry_id.as_deref().expect("a dead-letter id")).await;
    assert_eq!(by_entry.summary.id, failed[0]);
    let c = find(&done[1]).await;
    assert_eq!(
        (c.summary.state, c.summary.kind.as_str(), c.summary.attempts),
        (JobState::Completed, "t.ok", Some(1))
    );
    assert!(
        c.duration_ms.is_some() && c.summary.finished_at_ms.is_some(),
        "{c:?}"
    );
    assert!(
        env.admin
            .find_job(&q, "no-such-job")
            .await
            .expect("find")
            .is_none()
    );
    assert!(env.admin.find_job(&q, "").await.expect("find").is_none());

    // A cursor that is none of ours is refused, not misread.
    for (state, cursor) in [
        (JobState::Waiting, "7:1-0"),
        (JobState::Waiting, "0:x"),
        (JobState::Delayed, "soon"),
        (JobState::Failed, "99999999999999999999-0"),
        (JobState::Completed, "1-0"),
    ] {
        assert!(
            matches!(
                env.admin.jobs(&q, state, Some(cursor), 10).await,
                Err(Error::InvalidCursor(_))
            ),
            "{state} {cursor}"
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn a_job_deep_in_a_backlog_is_found_whatever_its_id() {
    let env = TestRedis::new().await;
    let q = env.queue("deep");
    let backlog = 5000;
    env.producer
        .enqueue_many(
            &q,
            (0..backlog).map(|i| NewJob::new("t.fill", format!("{i}"))),
        )
        .await
        .expect("enqueue");
    // Ids that are no UUIDv7 give no hint where to look: the whole stream is read.
    let custom = env
        .enqueue(&q, NewJob::new("t.mine", "me").id("order-42"))
        .await;
    let last = env.enqueue(&q, NewJob::new("t.mine", "me too")).await;
    for id in [custom.id(), last.id()] {
        let found = env
            .admin
            .find_job(&q, id)
            .await
            .expect("find")
            .expect("found");
        assert_eq!(
            (found.summary.id.as_str(), found.summary.state),
            (id, JobState::Waiting)
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn a_promoted_job_runs_now_and_keeps_its_unique_key() {
    let env = TestRedis::new().await;
    let q = env.queue("promote");
    let later = env
        .enqueue(
            &q,
            NewJob::new("t.later", "x")
                .delay(HOUR)
                .unique_until_settled("u"),
        )
        .await;
    let waiting = env.enqueue(&q, NewJob::new("t.now", "x")).await;

    assert!(env.admin.promote(&q, later.id()).await.expect("promote"));
    let found = env
        .admin
        .find_job(&q, later.id())
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.summary.state, JobState::Waiting);
    // Ready now: its wait starts at the promotion, not an hour from now.
    assert!(
        found
            .available_at_ms
            .is_some_and(|ms| ms < found.summary.enqueued_at_ms.unwrap_or(0) + 60_000),
        "{found:?}"
    );
    assert_eq!(
        env.admin
            .unique_holder(&q, "u")
            .await
            .expect("holder")
            .as_deref(),
        Some(later.id())
    );
    let again = env
        .enqueue(&q, NewJob::new("t.later", "x").unique_until_settled("u"))
        .await;
    assert!(
        matches!(again, Enqueued::Duplicate { ref id } if id == later.id()),
        "{again:?}"
    );

    // Only a delayed job is promoted.
    assert!(matches!(
        env.admin.promote(&q, waiting.id()).await,
        Err(Error::JobState {
            state: JobState::Waiting,
            ..
        })
    ));
    assert!(!env.admin.promote(&q, "no-such-job").await.expect("promote"));

    let worker = env.spawn_worker(&q, fast_worker_config_attempts(1), handler);
    env.completed_until(&q, later.id()).await;
    worker.stop().await;
    assert_eq!(
        env.admin.unique_holder(&q, "u").await.expect("holder"),
        None
    );
    env.finish().await;
}

#[tokio::test]
async fn deleting_a_waiting_or_delayed_job_releases_its_unique_key_but_a_running_job_is_kept() {
    let env = TestRedis::new().await;
    let q = env.queue("delete");
    let running = env
        .enqueue(&q, NewJob::new("t.run", "x").unique_until_settled("r"))
        .await;
    env.read_as(&q, "worker-1", 1).await;
    let waiting = env
        .enqueue(&q, NewJob::new("t.wait", "x").unique_until_settled("w"))
        .await;
    let delayed = env
        .enqueue(
            &q,
            NewJob::new("t.later", "x")
                .delay(HOUR)
                .unique_until_settled("d"),
        )
        .await;

    assert!(
        env.admin
            .delete_job(&q, waiting.id())
            .await
            .expect("delete waiting")
    );
    assert!(
        env.admin
            .delete_job(&q, delayed.id())
            .await
            .expect("delete delayed")
    );
    assert!(
        !env.admin
            .delete_job(&q, waiting.id())
            .await
            .expect("delete again"),
        "gone already"
    );
    assert!(matches!(
        env.admin.delete_job(&q, running.id()).await,
        Err(Error::JobState {
            state: JobState::Active,
            ..
        })
    ));
    let s = env.stats(&q).await;
    assert_eq!((s.waiting, s.active, s.delayed), (0, 1, 0), "{s:#?}");
    for key in ["w", "d"] {
        assert_eq!(
            env.admin.unique_holder(&q, key).await.expect("holder"),
            None,
            "{key}"
        );
    }
    assert_eq!(
        env.admin
            .unique_holder(&q, "r")
            .await
            .expect("holder")
            .as_deref(),
        Some(running.id())
    );
    // The keys are free: "make sure this job exists" creates it again.
    let again = env
        .enqueue(&q, NewJob::new("t.wait", "x").unique_until_settled("w"))
        .await;
    assert!(matches!(again, Enqueued::Added { .. }), "{again:?}");
    env.finish().await;
}
