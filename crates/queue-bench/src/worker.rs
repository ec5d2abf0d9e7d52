//! A worker process with a synthetic handler, and a synthetic producer.

use std::time::Duration;

use anyhow::Context;
use queue_core::{
    Backoff, Broker, BrokerConfig, CancellationToken, Job, JobError, NewJob, Priority, Producer,
    WorkerConfig,
};
use rand::Rng;

#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, default_value = "rsq")]
    pub prefix: String,
    #[arg(long, default_value = "bench")]
    pub queue: String,
    /// Use a queue with priority lanes.
    #[arg(long)]
    pub priority_lanes: bool,
}

impl Connection {
    pub async fn open(&self) -> anyhow::Result<(Broker, queue_core::Queue)> {
        let broker = Broker::connect(BrokerConfig::new(&self.redis_url).prefix(&self.prefix))
            .await
            .context("connecting to redis")?;
        let queue = if self.priority_lanes {
            broker.priority_queue(&self.queue)?
        } else {
            broker.queue(&self.queue)?
        };
        Ok((broker, queue))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Tokio worker threads of this process.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Each run sleeps a random time in [sleep-min-ms, sleep-ms].
    #[arg(long, default_value_t = 0)]
    pub sleep_ms: u64,
    /// Lower bound of the random sleep (tests use it to make a run last).
    #[arg(long, default_value_t = 0)]
    pub sleep_min_ms: u64,
    /// Probability that a run fails with a retryable error.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Probability that a run fails with a permanent error.
    #[arg(long, default_value_t = 0.0)]
    pub permanent_rate: f64,
    /// Count successful runs per job id in the queue's scratch hash `runs`.
    #[arg(long)]
    pub record: bool,
    /// Options left unset keep the WorkerConfig defaults.
    #[arg(long)]
    pub visibility_ms: Option<u64>,
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    #[arg(long)]
    pub reclaim_ms: Option<u64>,
    #[arg(long)]
    pub job_timeout_ms: Option<u64>,
    #[arg(long)]
    pub max_attempts: Option<u32>,
    #[arg(long)]
    pub backoff_ms: Option<u64>,
    #[arg(long)]
    pub max_deliveries: Option<u32>,
    #[arg(long)]
    pub promote_ms: Option<u64>,
    #[arg(long)]
    pub grace_ms: Option<u64>,
    #[arg(long)]
    pub block_ms: Option<u64>,
    /// Completions kept in the `done` stream.
    #[arg(long)]
    pub done_retention: Option<usize>,
}

impl WorkerArgs {
    fn config(&self) -> anyhow::Result<WorkerConfig> {
        let d = WorkerConfig::default();
        let ms = Duration::from_millis;
        Ok(WorkerConfig {
            concurrency: self
                .concurrency
                .try_into()
                .context("--concurrency must be > 0")?,
            batch_size: self.batch.try_into().context("--batch must be > 0")?,
            visibility_timeout: self.visibility_ms.map_or(d.visibility_timeout, ms),
            heartbeat_interval: self.heartbeat_ms.map_or(d.heartbeat_interval, ms),
            reclaim_interval: self.reclaim_ms.map_or(d.reclaim_interval, ms),
            job_timeout: self.job_timeout_ms.map_or(d.job_timeout, ms),
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
            backoff: match self.backoff_ms {
                Some(b) => Backoff {
                    initial: ms(b),
                    ..Backoff::default()
                },
                None => d.backoff,
            },
            max_deliveries: self.max_deliveries.unwrap_or(d.max_deliveries),
            promote_interval: self.promote_ms.map_or(d.promote_interval, ms),
            grace_period: self.grace_ms.map_or(d.grace_period, ms),
            block: self.block_ms.map_or(d.block, ms),
            done_retention: self.done_retention.unwrap_or(d.done_retention),
            ..d
        })
    }
}

/// Runs until SIGTERM or SIGINT. Prints `ready consumer=NAME` once consuming.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let (broker, queue) = args.conn.open().await?;
    let runs_key = queue.keys().scratch("runs");
    let recorder = broker.clone();
    let handler_args = args.clone();
    let worker = queue_core::worker::worker(&broker, &queue, config, move |job: Job| {
        let args = handler_args.clone();
        let runs_key = runs_key.clone();
        let recorder = recorder.clone();
        async move {
            let (sleep, roll) = {
                let mut rng = rand::rng();
                let max = args.sleep_ms.max(args.sleep_min_ms);
                let sleep = if max > 0 {
                    rng.random_range(args.sleep_min_ms..=max)
                } else {
                    0
                };
                (sleep, rng.random::<f64>())
            };
            if sleep > 0 {
                tokio::time::sleep(Duration::from_millis(sleep)).await;
            }
            if roll < args.permanent_rate {
                return Err(JobError::permanent(anyhow::anyhow!(
                    "synthetic permanent failure"
                )));
            }
            if roll < args.permanent_rate + args.fail_rate {
                return Err(JobError::retry(anyhow::anyhow!(
                    "synthetic failure on attempt {}",
                    job.attempt()
                )));
            }
            if args.record {
                let mut conn = recorder.connection().await?;
                redis::cmd("HINCRBY")
                    .arg(&runs_key)
                    .arg(job.id())
                    .arg(1)
                    .query_async::<i64>(&mut conn)
                    .await?;
            }
            Ok(())
        }
    })?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        signal.cancel();
    });
    println!("ready consumer={}", worker.consumer_name());
    worker.run(shutdown).await?;
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    #[arg(long, default_value = "bench.noop")]
    pub kind: String,
    #[arg(long, default_value_t = 16)]
    pub payload_bytes: usize,
    #[arg(long, default_value = "normal")]
    pub priority: Priority,
    /// Delay every job by this many ms.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    #[arg(long)]
    pub max_attempts: Option<u32>,
}

pub async fn enqueue(args: EnqueueArgs) -> anyhow::Result<()> {
    let (broker, queue) = args.conn.open().await?;
    let producer = Producer::new(broker);
    let payload = vec![b'x'; args.payload_bytes];
    let jobs = (0..args.count).map(|_| {
        let mut job = NewJob::new(args.kind.clone(), payload.clone()).priority(args.priority);
        if let Some(ms) = args.delay_ms {
            job = job.delay(Duration::from_millis(ms));
        }
        if let Some(a) = args.max_attempts {
            job = job.max_attempts(a);
        }
        job
    });
    let out = producer.enqueue_many(&queue, jobs).await?;
    println!("enqueued={}", out.len());
    Ok(())
}
