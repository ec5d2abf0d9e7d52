//! Job metrics. A binary of its own: it installs the global metrics recorder.

use std::sync::OnceLock;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use queue_core::testing::{Run, Runs, TestRedis, fast_worker_config};
use queue_core::{JobError, NewJob};

/// The process-wide recorder, installed before any worker of this binary records.
fn recorder() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("no other recorder in this binary");
        snapshotter
    })
}

fn labelled(key: &CompositeKey, name: &str, labels: &[(&str, &str)]) -> bool {
    key.key().name() == name
        && labels
            .iter()
            .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
}

#[tokio::test]
async fn job_metrics_count_outcomes_and_record_run_and_wait_times() {
    let snapshotter = recorder();
    let env = TestRedis::new().await;
    // The queue name is the metric label; unique within this binary.
    let q = env.queue("metered");
    let runs = Runs::default();
    let worker = env.spawn_worker(
        &q,
        fast_worker_config(),
        runs.answering(|run: &Run| {
            if run.kind == "t.bad" {
                return Err(JobError::permanent(anyhow::anyhow!("bad")));
            }
            Ok(())
        }),
    );
    env.producer
        .enqueue_many(
            &q,
            [
                NewJob::new("t.ok", "1"),
                NewJob::new("t.ok", "2"),
                NewJob::new("t.bad", "3"),
            ],
        )
        .await
        .expect("enqueue");
    env.stats_until(&q, "all three settled", |s| {
        s.completed == 2 && s.dead_lettered == 1
    })
    .await;
    // `run` returns after the last outcome was settled and counted.
    worker.stop().await;

    let snapshot = snapshotter.snapshot().into_vec();
    let queue = [("queue", "metered")];
    let counter = |outcome: &str| {
        snapshot.iter().find_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n)
                if key.kind() == MetricKind::Counter
                    && labelled(key, "rsq_jobs_total", &[queue[0], ("outcome", outcome)]) =>
            {
                Some(*n)
            }
            _ => None,
        })
    };
    let histogram = |name: &str| {
        snapshot.iter().find_map(|(key, _, _, value)| match value {
            DebugValue::Histogram(values) if labelled(key, name, &queue) => {
                Some(values.iter().map(|v| v.into_inner()).collect::<Vec<f64>>())
            }
            _ => None,
        })
    };
    assert_eq!(counter("completed"), Some(2));
    assert_eq!(counter("dead_lettered"), Some(1));
    let run = histogram("rsq_job_run_seconds").expect("run time histogram");
    assert_eq!(run.len(), 3, "one run time per run: {run:?}");
    assert!(run.iter().all(|s| *s >= 0.0));
    let wait = histogram("rsq_job_wait_seconds").expect("wait time histogram");
    assert_eq!(wait.len(), 3, "one wait time per run: {wait:?}");
    assert_eq!(runs.len(), 3);
    env.finish().await;
}
