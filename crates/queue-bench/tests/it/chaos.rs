//! The randomized run: thousands of jobs through worker processes that fail,
//! time out and get killed with SIGKILL, after which every job must have ended
//! exactly once, either completed or dead-lettered.
//!
//! The seed is printed; rerun a failure with `RSQ_CHAOS_SEED=<seed>`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use queue_core::testing::{TestRedis, ms};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::WorkerProcess;

const JOBS: usize = 3000;
const PROCESSES: usize = 3;
const KILLS: usize = 6;
const DRAIN_DEADLINE: Duration = Duration::from_secs(90);

/// Every worker process: 20 % retryable failures, 2 % permanent ones, runs of
/// 0-100 ms against a 70 ms timeout (so about 30 % time out), a visibility timeout
/// short enough that killed workers' jobs come back quickly, and a done stream
/// long enough to hold every completion.
const WORKER_ARGS: &[&str] = &[
    "--record",
    "--fail-rate",
    "0.2",
    "--permanent-rate",
    "0.02",
    "--sleep-ms",
    "100",
    "--job-timeout-ms",
    "70",
    "--max-attempts",
    "4",
    "--backoff-ms",
    "20",
    "--visibility-ms",
    "500",
    "--heartbeat-ms",
    "100",
    "--reclaim-ms",
    "100",
    "--promote-ms",
    "20",
    "--block-ms",
    "200",
    "--concurrency",
    "8",
    "--done-retention",
    "100000",
];

#[tokio::test]
async fn every_job_ends_exactly_once_despite_failures_timeouts_and_killed_workers() {
    let seed = std::env::var("RSQ_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("chaos seed {seed} (rerun with RSQ_CHAOS_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let env = TestRedis::new().await;
    let q = env.queue("chaos");
    let jobs = (0..JOBS).map(|i| queue_core::NewJob::new("t.chaos", format!("{i}")));
    let ids: Vec<String> = env
        .producer
        .enqueue_many(&q, jobs)
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.id().to_owned())
        .collect();

    let mut workers = Vec::new();
    for _ in 0..PROCESSES {
        workers.push(WorkerProcess::spawn(&env.prefix, q.name(), WORKER_ARGS).await);
    }

    // The chaos schedule: kill a random worker every 300 ms to 1 s and start a
    // replacement, until the kills are used up or the queue is drained.
    let mut kills = 0;
    while kills < KILLS {
        tokio::time::sleep(ms(rng.random_range(300..=1000))).await;
        let s = env.stats(&q).await;
        if s.waiting + s.active + s.delayed == 0 {
            break;
        }
        let victim = rng.random_range(0..workers.len());
        workers[victim].kill();
        kills += 1;
        workers[victim] = WorkerProcess::spawn(&env.prefix, q.name(), WORKER_ARGS).await;
    }

    let started = Instant::now();
    let s = loop {
        let s = env.stats(&q).await;
        if s.waiting + s.active + s.delayed == 0 {
            break s;
        }
        assert!(
            started.elapsed() < DRAIN_DEADLINE,
            "not drained after {DRAIN_DEADLINE:?} (seed {seed}): {s:#?}"
        );
        tokio::time::sleep(ms(50)).await;
    };
    // Nothing is left to run, so the workers can go; their absence freezes the state.
    for w in &mut workers {
        w.kill();
    }
    println!(
        "seed {seed}: {kills} kills, {} completed, {} dead-lettered, {} retried, {} reclaimed",
        s.completed, s.dead_lettered, s.retried, s.reclaimed
    );
    assert!(kills > 0, "the run ended before the first kill");
    assert!(s.reclaimed > 0, "no killed job was reclaimed: {s:#?}");

    // Where each job ended.
    let done = env
        .admin
        .completions(&q, 1_000_000)
        .await
        .expect("completions");
    let mut dead = Vec::new();
    let mut before = None;
    loop {
        let page = env
            .admin
            .dead_letters(&q, before.as_deref(), 1000)
            .await
            .expect("dead letters");
        dead.extend(page.items.into_iter().map(|d| d.job_id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let runs: HashMap<String, u64> = env
        .cmd(redis::cmd("HGETALL").arg(q.keys().scratch("runs")))
        .await;

    let mut ends: HashMap<&str, (u32, u32)> = ids.iter().map(|id| (id.as_str(), (0, 0))).collect();
    for c in &done {
        let id = &c.job_id;
        ends.get_mut(id.as_str())
            .unwrap_or_else(|| panic!("unknown job {id} completed"))
            .0 += 1;
    }
    for id in &dead {
        ends.get_mut(id.as_str())
            .unwrap_or_else(|| panic!("unknown job {id:?} dead-lettered"))
            .1 += 1;
    }
    let wrong: Vec<_> = ends
        .iter()
        .filter(|(_, (completed, dead))| completed + dead != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "jobs that did not end exactly once (completed, dead) (seed {seed}): {wrong:?}"
    );
    for c in &done {
        let id = &c.job_id;
        assert!(
            runs.get(id).copied().unwrap_or(0) >= 1,
            "job {id} completed without a recorded successful run (seed {seed})"
        );
    }

    assert_eq!(s.completed, done.len() as u64, "completed counter");
    assert_eq!(s.dead_lettered, dead.len() as u64, "dead-lettered counter");
    assert_eq!(s.failed, dead.len() as u64, "dead letters kept");
    env.assert_drained(&q).await;
    env.finish().await;
}
