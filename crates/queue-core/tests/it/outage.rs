//! A worker whose Redis goes away: it waits with backoff instead of having every
//! loop fail on its own clock and log it, and resumes once Redis answers again.

use std::io::Write;
use std::sync::{Arc, Mutex};

use queue_core::testing::{
    PrivateRedis, Runs, TestRedis, eventually, fast_worker_config, holds_for, ms,
};
use queue_core::{BrokerConfig, Job, JobError, NewJob};
use tokio::sync::Notify;
use tracing::Level;

/// Warnings and errors logged, one line each.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("log lock");
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Failed calls a worker may make over a 3 s outage: about one per loop as it
/// notices, then the prober's, whose delays double from 10 ms up to 500 ms
/// (`testing::fast`). A loop that kept trying on its own clock (the heartbeat
/// of a running job, every 100 ms) alone would make 30.
const MOST_FAILED_CALLS: u64 = 15;

// Current-thread runtime: the subscriber installed with `set_default` belongs to
// this thread, and every task of the runtime (the worker included) runs on it.
#[tokio::test]
async fn a_worker_waits_out_a_redis_outage_with_one_warning_few_calls_and_resumes_when_it_returns()
{
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::INFO)
        .with_ansi(false)
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .finish();
    let _scope = tracing::subscriber::set_default(subscriber);
    let warnings = || {
        log.lines()
            .into_iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect::<Vec<_>>()
    };

    let mut redis = PrivateRedis::start_with_aof().await;
    let env = TestRedis::on(BrokerConfig::new(redis.url())).await;
    let q = env.queue("outage");
    let runs = Runs::default();
    let release = Arc::new(Notify::new());
    let handler = {
        let (runs, release) = (runs.clone(), release.clone());
        move |job: Job| {
            let (runs, release) = (runs.clone(), release.clone());
            async move {
                runs.record(&job);
                if job.kind() == "t.long" {
                    release.notified().await;
                }
                Ok::<(), JobError>(())
            }
        }
    };
    let worker =
        queue_core::worker::worker(&env.broker, &q, fast_worker_config(), handler).expect("worker");
    let status = worker.redis_status();
    let running = env.spawn(worker);
    // A job runs through the outage: its claim is kept alive by the heartbeat.
    env.enqueue(&q, NewJob::new("t.long", "x")).await;
    eventually("the long job runs", async || {
        (runs.len() == 1).then_some(())
    })
    .await;

    assert_eq!(warnings(), Vec::<String>::new());

    redis.kill().await;
    eventually("the worker notices", async || {
        status.is_down().then_some(())
    })
    .await;
    holds_for(
        "the worker waits while Redis is down",
        ms(3000),
        async || status.is_down(),
    )
    .await;
    let failed = status.failed_calls();
    assert!(
        (1..=MOST_FAILED_CALLS).contains(&failed),
        "{failed} failed calls during a 3 s outage"
    );
    let warned = warnings();
    assert_eq!(warned.len(), 1, "one warning for the outage: {warned:#?}");
    assert!(warned[0].contains("Redis is unreachable"), "{warned:#?}");

    redis.restart().await;
    eventually("the worker resumes", async || {
        (!status.is_down()).then_some(())
    })
    .await;
    release.notify_one();
    let after = env.enqueue(&q, NewJob::new("t.after", "y")).await;
    eventually("a job enqueued after the outage runs", async || {
        (!runs.of(after.id()).is_empty()).then_some(())
    })
    .await;
    env.stats_until(&q, "both jobs completed", |s| s.completed == 2)
        .await;
    assert_eq!(warnings().len(), 1, "{:#?}", warnings());
    let back = log.lines();
    assert!(
        back.iter().any(|l| l.contains("Redis answers again")),
        "{back:#?}"
    );
    running.stop().await;
    env.finish().await;
}
