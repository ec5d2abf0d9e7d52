use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use queue_core::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let prefix = format!("smoke{}", std::process::id());
    let broker =
        Broker::connect(BrokerConfig::new("redis://127.0.0.1:6379").prefix(&prefix)).await?;
    let q = broker.queue("smoke")?;
    let p = Producer::new(broker.clone());
    let n = 20000;
    let t = Instant::now();
    p.enqueue_many(&q, (0..n).map(|i| NewJob::new("noop", format!("{i}"))))
        .await?;
    println!("enqueued {n} in {:?}", t.elapsed());
    p.enqueue(&q, NewJob::new("fail", "x").max_attempts(2))
        .await?;
    p.enqueue(
        &q,
        NewJob::new("noop", "d").delay(Duration::from_millis(300)),
    )
    .await?;
    let r = p
        .enqueue(
            &q,
            NewJob::new("noop", "u").dedup_key("k", Duration::from_secs(5)),
        )
        .await?;
    let r2 = p
        .enqueue(
            &q,
            NewJob::new("noop", "u").dedup_key("k", Duration::from_secs(5)),
        )
        .await?;
    println!("{r:?} {r2:?}");
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let cfg = WorkerConfig {
        concurrency: 100.try_into()?,
        backoff: Backoff {
            initial: Duration::from_millis(50),
            ..Backoff::default()
        },
        promote_interval: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let w = worker::worker(&broker, &q, cfg, move |job: Job| {
        let c = c.clone();
        async move {
            if job.kind() == "fail" {
                return Err(JobError::retry(anyhow::anyhow!("boom {}", job.attempt())));
            }
            c.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })?;
    let stop = CancellationToken::new();
    let h = tokio::spawn(w.run(stop.clone()));
    let admin = Admin::new(broker.clone());
    let t = Instant::now();
    loop {
        let s = admin.stats(&q).await?;
        if s.completed >= n + 2 && s.failed >= 1 {
            println!("{s:?} in {:?}", t.elapsed());
            break;
        }
        if t.elapsed() > Duration::from_secs(20) {
            println!("TIMEOUT {s:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("handled {}", count.load(Ordering::Relaxed));
    let page = admin.dead_letters(&q, None, 10).await?;
    println!(
        "{:?}",
        page.items
            .iter()
            .map(|d| (&d.kind, &d.error, d.attempts))
            .collect::<Vec<_>>()
    );
    println!("consumers {:?}", admin.consumers(&q).await?);
    stop.cancel();
    h.await??;
    println!("destroyed {}", admin.destroy(&q).await?);
    Ok(())
}
