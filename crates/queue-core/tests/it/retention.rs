//! What a queue keeps: its workers write their retention into the queue, and
//! `Admin::trim` removes the dead letters and completions it does not keep.

use std::time::Duration;

use queue_core::testing::{Runs, TestRedis, eventually, fast_worker_config, unix_ms};
use queue_core::{NewJob, Queue, Retention, Trimmed, WorkerConfig};

const HOUR: Duration = Duration::from_secs(3600);

/// Keeps everything: a trim with it removes nothing.
const KEEP_ALL: Retention = Retention {
    completed: 0,
    completed_max_age: None,
    dead_letters: 0,
    dead_letters_max_age: None,
};

/// Adds a dead letter at entry id `id` (`*` for now); its id.
async fn dead_letter(env: &TestRedis, q: &Queue, id: &str) -> String {
    env.cmd(
        redis::cmd("XADD")
            .arg(q.keys().dlq())
            .arg(id)
            .arg("error")
            .arg("boom"),
    )
    .await
}

/// The ids of `q`'s dead letters, newest first (as operators read them).
async fn dead_letter_ids(env: &TestRedis, q: &Queue) -> Vec<String> {
    env.dead_letters(q)
        .await
        .into_iter()
        .map(|d| d.id)
        .collect()
}

/// Runs `n` jobs one at a time, each its own record of the done stream; their ids.
async fn complete_one_by_one(env: &TestRedis, q: &Queue, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = env
            .enqueue(q, NewJob::new("t.one", "x"))
            .await
            .id()
            .to_owned();
        env.completed_until(q, &id).await;
        ids.push(id);
    }
    ids
}

async fn completed_ids(env: &TestRedis, q: &Queue) -> Vec<String> {
    let kept = env
        .admin
        .completions(q, 1_000_000)
        .await
        .expect("completions");
    kept.into_iter().map(|c| c.job_id).collect()
}

#[tokio::test]
async fn a_worker_writes_its_retention_into_the_queue_for_operators_and_cleanups() {
    let env = TestRedis::new().await;
    let q = env.queue("retention-meta");
    assert_eq!(env.admin.retention(&q).await.expect("read"), None);
    let config = WorkerConfig {
        done_retention: 7,
        dlq_retention: 70,
        dlq_max_age: Some(HOUR),
        ..fast_worker_config()
    };
    let expected = config.retention();
    let worker = env.spawn_worker(&q, config, Runs::default().recorder());
    let written = eventually("the worker wrote its retention", async || {
        env.admin.retention(&q).await.expect("read")
    })
    .await;
    assert_eq!(written, expected);
    assert_eq!(
        (written.completed, written.dead_letters_max_age),
        (7, Some(HOUR))
    );
    // Lost with the rest of Redis's data, it is written again while the worker runs.
    let _: i64 = env.cmd(redis::cmd("DEL").arg(q.keys().retention())).await;
    eventually("the worker wrote its retention again", async || {
        env.admin.retention(&q).await.expect("read")
    })
    .await;
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_queue_that_keeps_n_completions_keeps_the_n_newest_once_trimmed() {
    let env = TestRedis::new().await;
    let q = env.queue("retention-count");
    let config = WorkerConfig {
        done_retention: 5,
        ..fast_worker_config()
    };
    let retention = config.retention();
    let worker = env.spawn_worker(&q, config, Runs::default().recorder());
    let ids = complete_one_by_one(&env, &q, 12).await;
    worker.stop().await;
    // The workers trim as they add, between N and 1.5 N; the trim to N exactly.
    let before = completed_ids(&env, &q).await.len();
    assert!((5..=7).contains(&before), "{before} kept");
    let trimmed = env.admin.trim(&q, &retention).await.expect("trim");
    assert_eq!(trimmed.completions as usize, before - 5);
    let newest: Vec<String> = ids.iter().rev().take(5).cloned().collect();
    assert_eq!(completed_ids(&env, &q).await, newest);
    let again = env.admin.trim(&q, &retention).await.expect("trim again");
    assert_eq!(again, Trimmed::default());
    env.finish().await;
}

#[tokio::test]
async fn dead_letters_older_than_their_max_age_are_trimmed_and_younger_ones_kept() {
    let env = TestRedis::new().await;
    let q = env.queue("retention-dlq-age");
    let two_hours_ago = unix_ms(std::time::SystemTime::now()) - 2 * 3_600_000;
    dead_letter(&env, &q, "1000-0").await;
    dead_letter(&env, &q, &format!("{two_hours_ago}-0")).await;
    let young = dead_letter(&env, &q, "*").await;
    assert_eq!(
        env.admin.trim(&q, &KEEP_ALL).await.expect("trim"),
        Trimmed::default(),
        "a retention without limits keeps everything"
    );
    let hour = Retention {
        dead_letters_max_age: Some(HOUR),
        ..KEEP_ALL
    };
    let trimmed = env.admin.trim(&q, &hour).await.expect("trim");
    assert_eq!(trimmed.dead_letters, 2);
    let left = dead_letter_ids(&env, &q).await;
    assert_eq!(left, [young]);
    assert_eq!(
        env.admin.trim(&q, &hour).await.expect("again").dead_letters,
        0
    );
    env.finish().await;
}

#[tokio::test]
async fn the_dead_letter_count_keeps_the_newest_exactly() {
    let env = TestRedis::new().await;
    let q = env.queue("retention-dlq-count");
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(dead_letter(&env, &q, "*").await);
    }
    let three = Retention {
        dead_letters: 3,
        ..KEEP_ALL
    };
    assert_eq!(
        env.admin.trim(&q, &three).await.expect("trim").dead_letters,
        7
    );
    let left = dead_letter_ids(&env, &q).await;
    let newest: Vec<String> = ids.iter().rev().take(3).cloned().collect();
    assert_eq!(left, newest);
    env.finish().await;
}

#[tokio::test]
async fn completions_older_than_their_max_age_go_and_the_count_follows() {
    let env = TestRedis::new().await;
    let q = env.queue("retention-done-age");
    let config = fast_worker_config();
    let worker = env.spawn_worker(&q, config, Runs::default().recorder());
    complete_one_by_one(&env, &q, 3).await;
    // Completions at least 20 ms old: all three, once that much time has passed.
    let short = Retention {
        completed_max_age: Some(Duration::from_millis(20)),
        ..KEEP_ALL
    };
    let mut removed = 0;
    eventually("the three completions aged out", async || {
        removed += env.admin.trim(&q, &short).await.expect("trim").completions;
        (removed == 3).then_some(())
    })
    .await;
    assert!(completed_ids(&env, &q).await.is_empty());
    // The kept counter followed: new completions count from zero, and an hour's
    // age removes none of them.
    let newer = complete_one_by_one(&env, &q, 2).await;
    worker.stop().await;
    let kept: u64 = env
        .cmd(redis::cmd("HGET").arg(q.keys().stats()).arg("done_kept"))
        .await;
    assert_eq!(kept, 2);
    let hour = Retention {
        completed_max_age: Some(HOUR),
        ..KEEP_ALL
    };
    assert_eq!(
        env.admin.trim(&q, &hour).await.expect("trim"),
        Trimmed::default()
    );
    let left = completed_ids(&env, &q).await;
    assert_eq!(left, newer.into_iter().rev().collect::<Vec<_>>());
    env.finish().await;
}
