//! The Lua scripts that move jobs between states.
//!
//! Every state change of a job (acknowledge + record the outcome, schedule a retry,
//! dead-letter, reclaim, promote a delayed job, retry a dead letter) is one script,
//! so Redis applies it atomically: there is no moment at which a job exists nowhere
//! or in two places. All keys a script touches are passed through `KEYS` and share
//! the queue's hash tag, so the scripts run unchanged on Redis Cluster.
//! `redis::Script` sends `EVALSHA` and falls back to `EVAL` after a script flush.
//! The scripts name fields and counters as `F.envelope`, `S.completed`, ...;
//! [`fields::expand_lua`] replaces them with the Rust constants when loading.
//! Unique-until-settled keys follow their jobs through the same scripts: see
//! `lua/unique.lua`.

use std::fmt::Write as _;
use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use crate::fields;
use crate::keys::QueueKeys;

/// The unique-key library (`lua/unique.lua`), prepended to every script that
/// adds, moves or removes a job, so each keeps its job's key true in its own step.
const UNIQUE_LIB: &str = include_str!("lua/unique.lua");

/// The per-minute history library (`lua/history.lua`), prepended to the scripts
/// that settle runs, so the counters cost no round trip of their own.
const HISTORY_LIB: &str = include_str!("lua/history.lua");

macro_rules! script {
    ($name:ident, $file:literal $(, $lib:ident)*) => {
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
            let libs: &[&str] = &[$($lib),*];
            Script::new(&fields::expand_lua(&format!(
                "{}{}",
                libs.concat(),
                include_str!(concat!("lua/", $file))
            )))
        });
    };
}

script!(ENQUEUE, "enqueue.lua", UNIQUE_LIB);
script!(PROMOTE, "promote.lua", UNIQUE_LIB);
script!(COMPLETE, "complete.lua", UNIQUE_LIB, HISTORY_LIB);

/// A completed run as complete.lua records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion<'a> {
    pub entry_id: &'a str,
    pub job_id: &'a str,
    pub kind: &'a str,
    pub attempt: u32,
    pub duration_ms: u64,
    /// Empty when the job holds no unique key.
    pub unique_key: &'a str,
}

/// complete.lua's invocation for `jobs` of one lane `stream`, in the layout its
/// header documents; `waits` is (the runs' waits in ms summed, runs in that sum).
/// Sorts `jobs` by entry id: the script trims the lowest ones in one step.
pub(crate) fn complete_invocation(
    keys: &QueueKeys,
    stream: &str,
    group: &str,
    done_retention: usize,
    waits: (u64, usize),
    jobs: &mut [Completion<'_>],
) -> ScriptInvocation<'static> {
    jobs.sort_by_key(|c| stream_id_order(c.entry_id));
    let mut inv = COMPLETE.prepare_invoke();
    inv.key(keys.done())
        .key(keys.stats())
        .key(stream)
        .key(keys.done_index())
        .arg(group)
        .arg(done_retention)
        .arg(keys.history_prefix())
        .arg(waits.0)
        .arg(waits.1)
        .arg(jobs.len());
    for c in jobs.iter() {
        inv.arg(c.entry_id);
    }
    // The batch's done values joined here, so the script writes them as one
    // field without touching each (docs/benchmarks.md, issue 19).
    let sep = fields::done::SEPARATOR;
    let mut batch = String::with_capacity(jobs.len() * 64);
    for (n, c) in jobs.iter().enumerate() {
        if n > 0 {
            batch.push(fields::done::RECORD_SEPARATOR);
        }
        let _ = write!(
            batch,
            "{}{sep}{}{sep}{}{sep}{}",
            c.job_id, c.kind, c.attempt, c.duration_ms
        );
    }
    inv.arg(batch);
    // Unique keys go last, as KEYS[5..]: most batches hold none and pay nothing.
    let mut key_index = 4;
    for (n, c) in jobs.iter().enumerate() {
        if !c.unique_key.is_empty() {
            key_index += 1;
            inv.key(keys.uniq(c.unique_key));
            inv.arg(n + 1).arg(key_index).arg(c.job_id);
        }
    }
    inv
}

/// A stream entry id `MS-SEQ` as numbers, for sorting; an id that is not one
/// (never from Redis) sorts first.
fn stream_id_order(id: &str) -> (u64, u64) {
    id.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .unwrap_or((0, 0))
}
script!(RETRY, "retry.lua", UNIQUE_LIB, HISTORY_LIB);
script!(DEAD_LETTER, "dead_letter.lua", UNIQUE_LIB, HISTORY_LIB);
script!(RECLAIM, "reclaim.lua", UNIQUE_LIB, HISTORY_LIB);
script!(HEARTBEAT, "heartbeat.lua");
script!(DLQ_RETRY, "dlq_retry.lua", UNIQUE_LIB);
script!(STATS, "stats.lua");
script!(PURGE, "purge.lua", UNIQUE_LIB);
script!(EVICT_CONSUMER, "evict_consumer.lua");
script!(LIMIT_ADMIT, "limit_admit.lua");
script!(LIMIT_REFRESH, "limit_refresh.lua");
script!(HISTORY, "history_read.lua");
script!(BROWSE, "browse.lua");
script!(FIND, "find.lua");
script!(PROMOTE_JOB, "promote_job.lua", UNIQUE_LIB);
script!(DELETE_JOB, "delete_job.lua", UNIQUE_LIB);
script!(TRIM, "trim.lua");

#[cfg(test)]
mod tests {
    use crate::fields;

    #[test]
    fn every_name_a_script_uses_is_a_known_field_or_counter() {
        for (file, source) in [
            ("enqueue", include_str!("lua/enqueue.lua")),
            ("promote", include_str!("lua/promote.lua")),
            ("complete", include_str!("lua/complete.lua")),
            ("retry", include_str!("lua/retry.lua")),
            ("dead_letter", include_str!("lua/dead_letter.lua")),
            ("reclaim", include_str!("lua/reclaim.lua")),
            ("heartbeat", include_str!("lua/heartbeat.lua")),
            ("dlq_retry", include_str!("lua/dlq_retry.lua")),
            ("stats", include_str!("lua/stats.lua")),
            ("purge", include_str!("lua/purge.lua")),
            ("evict_consumer", include_str!("lua/evict_consumer.lua")),
            ("unique", include_str!("lua/unique.lua")),
            ("limit_admit", include_str!("lua/limit_admit.lua")),
            ("limit_refresh", include_str!("lua/limit_refresh.lua")),
            ("history", include_str!("lua/history.lua")),
            ("history_read", include_str!("lua/history_read.lua")),
            ("browse", include_str!("lua/browse.lua")),
            ("find", include_str!("lua/find.lua")),
            ("promote_job", include_str!("lua/promote_job.lua")),
            ("delete_job", include_str!("lua/delete_job.lua")),
            ("trim", include_str!("lua/trim.lua")),
        ] {
            let lua = fields::expand_lua(source);
            for marker in ["F.", "S.", "H."] {
                assert!(
                    !lua.contains(marker),
                    "{file}.lua names an unknown field or counter: {}",
                    lua.lines().find(|l| l.contains(marker)).unwrap_or_default()
                );
            }
        }
    }

    #[test]
    fn the_history_expiry_in_lua_is_the_rust_constant() {
        let seconds = fields::history::KEEP_MINUTES * 60;
        assert!(
            include_str!("lua/history.lua")
                .contains(&format!("local HISTORY_KEEP_S = {seconds}\n")),
            "lua/history.lua must keep minutes for fields::history::KEEP_MINUTES"
        );
    }

    /// A job that leaves the queue takes its unique key with it in the same
    /// script: no reply lost, no crash between two round trips, leaves the key
    /// naming a job that no longer exists. Each script runs alone here, and the
    /// key must be gone as soon as it returns.
    mod unique_keys_leave_with_their_jobs {
        use crate::testing::TestRedis;
        use crate::{NewJob, fields, scripts};

        fn ensure(key: &str) -> NewJob {
            NewJob::new("t.ensure", "x").unique_until_settled(key)
        }

        async fn held(env: &TestRedis, q: &crate::Queue, key: &str) -> bool {
            let v: Option<Vec<u8>> = env.cmd(redis::cmd("GET").arg(q.keys().uniq(key))).await;
            v.is_some()
        }

        #[tokio::test]
        async fn the_purge_script_releases_the_keys_of_the_jobs_it_deletes() {
            let env = TestRedis::new().await;
            let q = env.queue("purge-script");
            let later = ensure("b").delay(std::time::Duration::from_secs(3600));
            for job in [ensure("a"), later] {
                env.producer.enqueue(&q, job).await.expect("enqueue");
            }
            assert!(held(&env, &q, "a").await && held(&env, &q, "b").await);
            let mut conn = env.broker.connection().await.expect("connection");
            let mut inv = scripts::PURGE.prepare_invoke();
            inv.key(q.keys().delayed())
                .key(&q.streams()[0])
                .arg(fields::DEFAULT_GROUP)
                .arg(1000)
                .arg(q.keys().uniq_prefix());
            let purged: (u64, u64) = inv.invoke_async(&mut conn).await.expect("purge");
            assert_eq!(purged, (1, 1));
            for key in ["a", "b"] {
                assert!(
                    !held(&env, &q, key).await,
                    "{key}: the key outlived the purge script"
                );
            }
            env.finish().await;
        }

        #[tokio::test]
        async fn the_reclaim_script_releases_the_key_of_a_poison_entry_it_dead_letters() {
            let env = TestRedis::new().await;
            let q = env.queue("poison-script");
            let entry_id = env.enqueue_entry(&q, ensure("p")).await;
            env.read_as(&q, "ghost-1", 1).await;
            env.claim_as(&q, "ghost-2", &entry_id).await;
            let mut conn = env.broker.connection().await.expect("connection");
            let keys = q.keys();
            let mut inv = scripts::RECLAIM.prepare_invoke();
            inv.key(&q.streams()[0])
                .key(keys.dlq())
                .key(keys.stats())
                .arg(fields::DEFAULT_GROUP)
                .arg("reclaimer")
                .arg(0)
                .arg("0-0")
                .arg(10)
                .arg(1)
                .arg(0)
                .arg("normal")
                .arg(q.keys().uniq_prefix())
                .arg(q.keys().history_prefix());
            let _: redis::Value = inv.invoke_async(&mut conn).await.expect("reclaim");
            assert_eq!(env.xlen(&keys.dlq()).await, 1, "dead-lettered");
            assert!(
                !held(&env, &q, "p").await,
                "the key outlived the reclaim script"
            );
            // Counted in the minute's history, as a failure without a run.
            let history = env.admin.history(&q, 2).await.expect("history");
            let counted = history.iter().fold((0, 0, 0), |(f, d, w), m| {
                (f + m.failed, d + m.dead_lettered, w + m.waited)
            });
            assert_eq!(counted, (1, 1, 0), "{history:?}");
            env.finish().await;
        }

        #[tokio::test]
        async fn the_delete_script_leaves_an_entry_a_worker_read_since_it_was_found() {
            let env = TestRedis::new().await;
            let q = env.queue("delete-script");
            let entry_id = env.enqueue_entry(&q, ensure("k")).await;
            // Found waiting, then read by a worker before the delete runs.
            env.read_as(&q, "worker-1", 1).await;
            let mut conn = env.broker.connection().await.expect("connection");
            let mut inv = scripts::DELETE_JOB.prepare_invoke();
            inv.key(&q.streams()[0])
                .arg("stream")
                .arg(&entry_id)
                .arg(fields::DEFAULT_GROUP)
                .arg(q.keys().uniq_prefix());
            let deleted: i64 = inv.invoke_async(&mut conn).await.expect("delete");
            assert_eq!(deleted, -1, "a running entry is not deleted");
            assert_eq!(env.xlen(&q.streams()[0]).await, 1);
            assert!(held(&env, &q, "k").await, "its key stays with it");
            env.finish().await;
        }
    }

    /// complete.lua settles a batch with one XACK, and deletes it with one XTRIM
    /// below the oldest pending entry plus one XDEL above it.
    mod complete_batches {
        use crate::testing::TestRedis;
        use crate::{NewJob, fields, scripts};

        /// Runs complete.lua for `ids` (ascending) as the worker does; the job
        /// of entry `e` is recorded as `job-e`.
        async fn complete(env: &TestRedis, q: &crate::Queue, ids: &[&str]) -> u64 {
            let job_ids: Vec<String> = ids.iter().map(|id| format!("job-{id}")).collect();
            let mut jobs: Vec<scripts::Completion<'_>> = ids
                .iter()
                .zip(&job_ids)
                .map(|(entry_id, job_id)| scripts::Completion {
                    entry_id,
                    job_id,
                    kind: "t.batch",
                    attempt: 1,
                    duration_ms: 0,
                    unique_key: "",
                })
                .collect();
            invoke(env, q, &mut jobs).await
        }

        /// complete.lua for `jobs` as the worker calls it (its argument layout
        /// comes from the same builder).
        async fn invoke(
            env: &TestRedis,
            q: &crate::Queue,
            jobs: &mut [scripts::Completion<'_>],
        ) -> u64 {
            let inv = scripts::complete_invocation(
                q.keys(),
                &q.streams()[0],
                fields::DEFAULT_GROUP,
                1000,
                (0, 0),
                jobs,
            );
            let mut conn = env.broker.connection().await.expect("connection");
            inv.invoke_async(&mut conn).await.expect("complete")
        }

        async fn entries(env: &TestRedis, q: &crate::Queue) -> Vec<String> {
            let rows: Vec<(String, redis::Value)> = env
                .cmd(redis::cmd("XRANGE").arg(&q.streams()[0]).arg("-").arg("+"))
                .await;
            rows.into_iter().map(|(id, _)| id).collect()
        }

        async fn enqueue(env: &TestRedis, q: &crate::Queue, n: usize) -> Vec<String> {
            let mut ids = Vec::new();
            for _ in 0..n {
                ids.push(env.enqueue_entry(q, NewJob::new("t.batch", "x")).await);
            }
            ids
        }

        #[tokio::test]
        async fn entries_around_a_running_one_are_deleted_and_it_and_the_unread_stay() {
            let env = TestRedis::new().await;
            let q = env.queue("complete-split");
            let e = enqueue(&env, &q, 5).await;
            env.read_as(&q, "worker-1", 4).await;
            // e[1] still runs, e[4] is unread: e[0] lies below the oldest pending
            // entry (trimmed), e[2] and e[3] above it (deleted one by one).
            assert_eq!(complete(&env, &q, &[&e[0], &e[2], &e[3]]).await, 3);
            assert_eq!(entries(&env, &q).await, [e[1].clone(), e[4].clone()]);
            assert_eq!(env.pending(&q).await, 1);
            // Nothing pending below the batch: the trim stops at its newest entry.
            assert_eq!(complete(&env, &q, &[&e[1]]).await, 1);
            assert_eq!(entries(&env, &q).await, [e[4].clone()]);
            let s = env.admin.stats(&q).await.expect("stats");
            assert_eq!((s.completed, s.waiting, s.active), (4, 1, 0));
            env.finish().await;
        }

        #[tokio::test]
        async fn a_job_another_consumer_settled_first_is_counted_and_recorded_once() {
            let env = TestRedis::new().await;
            let q = env.queue("complete-twice");
            let e = enqueue(&env, &q, 3).await;
            env.read_as(&q, "worker-1", 3).await;
            // A reclaim ran e[1] twice; the other run was settled first.
            assert_eq!(complete(&env, &q, &[&e[1]]).await, 1);
            assert_eq!(complete(&env, &q, &[&e[0], &e[1], &e[2]]).await, 2);
            assert!(entries(&env, &q).await.is_empty());
            assert_eq!(env.pending(&q).await, 0);
            let s = env.admin.stats(&q).await.expect("stats");
            assert_eq!(s.completed, 3);
            let mut done: Vec<String> = env
                .admin
                .completions(&q, 10)
                .await
                .expect("completions")
                .into_iter()
                .map(|c| c.job_id)
                .collect();
            done.sort();
            let mut want: Vec<String> = e.iter().map(|id| format!("job-{id}")).collect();
            want.sort();
            assert_eq!(done, want, "each job recorded once");
            // Settled again (a lost reply retried): nothing is counted.
            assert_eq!(complete(&env, &q, &[&e[0], &e[2]]).await, 0);
            assert_eq!(env.admin.stats(&q).await.expect("stats").completed, 3);
            env.finish().await;
        }

        /// complete.lua for `jobs` (entry id, job id, unique key) as the worker
        /// calls it, each job holding its key.
        async fn complete_unique(
            env: &TestRedis,
            q: &crate::Queue,
            jobs: &[&(String, String, &str)],
        ) -> u64 {
            let mut completions: Vec<scripts::Completion<'_>> = jobs
                .iter()
                .map(|(entry_id, job_id, key)| scripts::Completion {
                    entry_id,
                    job_id,
                    kind: "t.batch",
                    attempt: 1,
                    duration_ms: 0,
                    unique_key: key,
                })
                .collect();
            invoke(env, q, &mut completions).await
        }

        #[tokio::test]
        async fn the_unique_keys_of_the_jobs_a_call_settles_are_released_on_both_paths() {
            let env = TestRedis::new().await;
            let q = env.queue("complete-unique");
            let mut jobs = Vec::new();
            for key in ["a", "b", "c", "d"] {
                let job = NewJob::new("t.batch", "x").unique_until_settled(key);
                match env.enqueue(&q, job).await {
                    crate::Enqueued::Added { id, entry_id } => jobs.push((entry_id, id, key)),
                    other => panic!("{other:?}"),
                }
            }
            let held = |key: &'static str| {
                let env = &env;
                let q = &q;
                async move {
                    let v: Option<String> =
                        env.cmd(redis::cmd("GET").arg(q.keys().uniq(key))).await;
                    v.is_some()
                }
            };
            env.read_as(&q, "worker-1", 4).await;
            // The rule: the whole batch acknowledged.
            assert_eq!(complete_unique(&env, &q, &[&jobs[0]]).await, 1);
            assert!(!held("a").await);
            // A reclaim ran c twice, the other run settled first: the split path.
            assert_eq!(complete_unique(&env, &q, &[&jobs[2]]).await, 1);
            assert!(!held("c").await);
            assert!(held("b").await && held("d").await);
            assert_eq!(
                complete_unique(&env, &q, &[&jobs[1], &jobs[2], &jobs[3]]).await,
                2
            );
            assert!(!held("b").await && !held("d").await);
            let done = env.admin.completions(&q, 10).await.expect("completions");
            let ids: Vec<&str> = done.iter().map(|c| c.job_id.as_str()).collect();
            assert_eq!(ids, [&jobs[3].1, &jobs[1].1, &jobs[2].1, &jobs[0].1]);
            env.finish().await;
        }

        #[tokio::test]
        async fn a_done_stream_holding_old_per_job_records_and_batches_reads_whole() {
            use crate::admin::{JobPage, JobState};
            let env = TestRedis::new().await;
            let q = env.queue("complete-mixed");
            // A record as workers wrote it before batches: one `j` field per job.
            let sep = fields::done::SEPARATOR;
            let _: String = env
                .cmd(
                    redis::cmd("XADD")
                        .arg(q.keys().done())
                        .arg("*")
                        .arg(fields::done::JOB)
                        .arg(format!("old-1{sep}t.old{sep}1{sep}4"))
                        .arg(fields::done::JOB)
                        .arg(format!("old-2{sep}t.old{sep}2{sep}6")),
                )
                .await;
            // Then two batches by this worker: one whole, one a reclaim split.
            let e = enqueue(&env, &q, 5).await;
            env.read_as(&q, "worker-1", 5).await;
            assert_eq!(complete(&env, &q, &[&e[0], &e[1]]).await, 2);
            assert_eq!(complete(&env, &q, &[&e[3]]).await, 1);
            assert_eq!(complete(&env, &q, &[&e[2], &e[3], &e[4]]).await, 2);
            let raw: Vec<(String, Vec<(String, String)>)> = env
                .cmd(redis::cmd("XRANGE").arg(q.keys().done()).arg("-").arg("+"))
                .await;
            let shapes: Vec<Vec<&str>> = raw
                .iter()
                .map(|(_, f)| f.iter().map(|(name, _)| name.as_str()).collect())
                .collect();
            assert_eq!(shapes, [vec!["j", "j"], vec!["b"], vec!["b"], vec!["b"]]);
            let job = |i: usize| format!("job-{}", e[i]);
            let newest_first = vec![
                job(4),
                job(2),
                job(3),
                job(1),
                job(0),
                "old-2".to_owned(),
                "old-1".to_owned(),
            ];
            let done = env.admin.completions(&q, 100).await.expect("completions");
            let ids: Vec<String> = done.iter().map(|c| c.job_id.clone()).collect();
            assert_eq!(ids, newest_first);
            assert_eq!(
                (done[5].kind.as_str(), done[5].attempt, done[5].duration_ms),
                ("t.old", 2, 6)
            );
            assert_eq!(done[0].kind, "t.batch");
            // The listing pages through both kinds, across and inside records.
            let mut listed = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let JobPage { jobs, next } = env
                    .admin
                    .jobs(&q, JobState::Completed, after.as_deref(), 3)
                    .await
                    .expect("jobs");
                listed.extend(jobs.into_iter().map(|j| j.id));
                match next {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
            assert_eq!(listed, newest_first);
            // Found by id in either kind, first, middle or last of a batch.
            for id in &newest_first {
                let found = env.admin.find_job(&q, id).await.expect("find");
                let found = found.unwrap_or_else(|| panic!("{id} not found"));
                assert_eq!(
                    (found.summary.id.as_str(), found.summary.state),
                    (id.as_str(), JobState::Completed)
                );
                assert!(found.duration_ms.is_some(), "{id}: {found:?}");
            }
            let old = env
                .admin
                .find_job(&q, "old-2")
                .await
                .expect("find")
                .expect("old-2");
            assert_eq!((old.summary.attempts, old.duration_ms), (Some(2), Some(6)));
            env.finish().await;
        }
    }
}
