//! The dead-letter hook runs on every path to the dead-letter stream, and is
//! retried until it succeeds.

use std::sync::{Arc, Mutex};

use queue_core::testing::{TestRedis, fast_worker_config, ms};
use queue_core::{DeadLettered, Handler, Job, JobError, NewJob, WorkerConfig};

/// Fails or hangs as each job's payload says, and records what the hook got.
#[derive(Clone, Default)]
struct Recorder {
    letters: Arc<Mutex<Vec<(String, String)>>>,
    hook_failures_left: Arc<Mutex<u32>>,
}

impl Handler for Recorder {
    async fn handle(&self, job: Job) -> Result<(), JobError> {
        match job.payload().as_ref() {
            b"permanent" => Err(JobError::permanent(anyhow::anyhow!("no way"))),
            b"retry" => Err(JobError::retry(anyhow::anyhow!("still failing"))),
            b"hang" => {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                Ok(())
            }
            b"panic" => panic!("the handler panicked"),
            _ => Ok(()),
        }
    }

    async fn on_dead_letter(&self, letter: DeadLettered) -> anyhow::Result<()> {
        {
            let mut left = self.hook_failures_left.lock().expect("lock");
            if *left > 0 {
                *left -= 1;
                anyhow::bail!("the database is down");
            }
        }
        self.letters
            .lock()
            .expect("lock")
            .push((letter.kind().to_owned(), letter.error.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn every_path_to_the_dead_letter_stream_runs_the_hook_even_when_it_fails_at_first() {
    let env = TestRedis::new().await;
    let q = env.queue("hook");
    let recorder = Recorder::default();
    // The first two calls fail, as when PostgreSQL is down: they are retried.
    *recorder.hook_failures_left.lock().expect("lock") = 2;
    for (kind, payload) in [
        ("t.permanent", "permanent"),
        ("t.retry", "retry"),
        ("t.hang", "hang"),
        ("t.panic", "panic"),
    ] {
        env.enqueue(&q, NewJob::new(kind, payload).max_attempts(2))
            .await;
    }
    // An entry that is no envelope at all.
    env.add_raw(&q, "not protobuf \u{1}\u{2}").await;
    let config = WorkerConfig {
        job_timeout: ms(100),
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, recorder.clone());
    env.stats_until(&q, "all five are dead letters", |s| s.dead_lettered == 5)
        .await;
    let letters = queue_core::testing::eventually("the hook ran for each", async || {
        let letters = recorder.letters.lock().expect("lock").clone();
        (letters.len() == 5).then_some(letters)
    })
    .await;
    let reason_of = |kind: &str| {
        letters
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("no hook call for {kind:?}: {letters:?}"))
    };
    assert!(reason_of("t.permanent").contains("no way"));
    assert!(reason_of("t.retry").contains("still failing"));
    assert!(reason_of("t.hang").contains("timed out"));
    assert!(reason_of("t.panic").contains("panicked"));
    assert!(reason_of("").contains("does not decode"), "{letters:?}");
    worker.stop().await;
    env.finish().await;
}

#[tokio::test]
async fn a_poison_entry_dead_lettered_by_reclaim_runs_the_hook() {
    let env = TestRedis::new().await;
    let q = env.queue("hook-poison");
    let entry_id = env.enqueue_entry(&q, NewJob::new("t.poison", "x")).await;
    env.read_as(&q, "ghost-1", 1).await;
    env.claim_as(&q, "ghost-2", &entry_id).await;
    let recorder = Recorder::default();
    let config = WorkerConfig {
        max_deliveries: 2,
        ..fast_worker_config()
    };
    let worker = env.spawn_worker(&q, config, recorder.clone());
    let letters = queue_core::testing::eventually("the hook ran", async || {
        let letters = recorder.letters.lock().expect("lock").clone();
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters[0].0, "t.poison");
    assert!(letters[0].1.contains("max_deliveries"), "{letters:?}");
    worker.stop().await;
    env.finish().await;
}
