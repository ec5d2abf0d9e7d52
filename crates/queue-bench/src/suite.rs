//! The benchmark suite behind `scripts/bench.sh queue-core` (the bench target
//! `benches/queue_core.rs`).
//!
//! Prints one `key=value` line per figure on stdout; progress and the Redis
//! per-command breakdown (`# ...` lines) go to stderr. Every stage uses its own
//! queue under a fresh key prefix, and every queue is destroyed at the end.
//!
//! Workers whose cost is measured (drain, end to end, recovery, idle memory) run
//! as separate `queue-bench worker` processes, so `/proc/PID/stat` and
//! `/proc/PID/status` describe the worker alone; their completion is detected by
//! polling `Admin::stats`. The latency stage runs its worker in this process so
//! that enqueue and start are compared on one monotonic clock, in microseconds.
//! Redis CPU is `used_cpu_sys + used_cpu_user` from `INFO cpu` around a stage.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use queue_core::{
    Admin, Broker, BrokerConfig, CancellationToken, Job, NewJob, Producer, Queue, WorkerConfig,
};

use crate::measure::{self, CommandStat};

/// The stages of the suite, in the order they run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// worker_rss_idle_mb
    Idle,
    /// enqueue_jobs_per_s, drain_jobs_per_s, CPU per job, worker_rss_peak_mb
    Drain,
    /// drain_c1000_jobs_per_s and its CPU and memory figures
    DrainC1000,
    /// e2e_jobs_per_s, e2e CPU per job
    E2e,
    /// latency_p50_ms, latency_p99_ms, latency_max_ms
    Latency,
    /// recovery_s
    Recovery,
    /// The floor: bare_xreadgroup_jobs_per_s, bare_redis_cpu_us_per_job, bare_xadd_*
    Bare,
    /// bullmq_*: BullMQ's drain of the same shape (node, `bullmq/drain.mjs`)
    Bullmq,
    /// find_job_*_ms (a job by id in a backlog of --jobs), jobs_page_ms, history_day_ms
    Browse,
}

/// The drain, its floor and BullMQ's drain run one after the other, so that the
/// ratios printed at the end compare figures of one Redis at one moment.
const ALL_STAGES: [Stage; 9] = [
    Stage::Idle,
    Stage::Drain,
    Stage::Bare,
    Stage::Bullmq,
    Stage::DrainC1000,
    Stage::E2e,
    Stage::Latency,
    Stage::Recovery,
    Stage::Browse,
];

/// The suite's options, parsed by `benches/queue_core.rs`.
#[derive(clap::Parser, Debug)]
#[command(
    name = "scripts/bench.sh queue-core",
    bin_name = "scripts/bench.sh queue-core",
    about = "The queue-core benchmark suite: one `key=value` line per figure"
)]
pub struct SuiteArgs {
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Jobs per drain, end-to-end and bare run.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Jobs per second of the latency stage.
    #[arg(long, default_value_t = 2000)]
    latency_rate: u64,
    /// Measured seconds of the latency stage (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    latency_secs: u64,
    /// Seconds the recovery stage waits before it reports `recovery_s=timeout`.
    #[arg(long, default_value_t = 30)]
    recovery_timeout_s: u64,
    /// Run only these stages (comma-separated); default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Stage>,
}

/// Figure names of one drain run.
struct DrainKeys {
    rate: &'static str,
    redis_cpu: &'static str,
    worker_cpu: &'static str,
    rss_peak: &'static str,
    /// The enqueue that fills the queue is reported by the first drain only.
    report_enqueue: bool,
}

const DRAIN_C100: DrainKeys = DrainKeys {
    rate: "drain_jobs_per_s",
    redis_cpu: "redis_cpu_us_per_job",
    worker_cpu: "worker_cpu_us_per_job",
    rss_peak: "worker_rss_peak_mb",
    report_enqueue: true,
};

const DRAIN_C1000: DrainKeys = DrainKeys {
    rate: "drain_c1000_jobs_per_s",
    redis_cpu: "drain_c1000_redis_cpu_us_per_job",
    worker_cpu: "drain_c1000_worker_cpu_us_per_job",
    rss_peak: "drain_c1000_worker_rss_peak_mb",
    report_enqueue: false,
};

/// Payload of the synthetic no-op jobs (the size `queue-bench enqueue` uses).
const NOOP_PAYLOAD: &[u8] = b"xxxxxxxxxxxxxxxx";
/// Longest any stage may take before the suite gives up on it.
const STAGE_DEADLINE: Duration = Duration::from_secs(180);

/// Runs the stages `args` selects; `worker_exe` is the `queue-bench` binary
/// whose `worker` subcommand runs the measured workers.
pub async fn run(args: SuiteArgs, worker_exe: PathBuf) -> anyhow::Result<()> {
    if args.jobs == 0 || args.latency_rate == 0 || args.latency_secs == 0 {
        bail!("--jobs, --latency-rate and --latency-secs must be greater than zero");
    }
    let prefix = format!("bench-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let broker = Broker::connect(BrokerConfig::new(&args.redis_url).prefix(&prefix))
        .await
        .context("connecting to redis")?;
    let bench = Bench {
        exe: worker_exe,
        admin: Admin::new(broker.clone()),
        broker,
        clk_tck: measure::clock_ticks_per_s(),
        queues: Mutex::new(Vec::new()),
        args,
    };
    let server = bench.info("server").await?;
    let version = server
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))
        .unwrap_or("unknown");
    note(&format!("redis {version}, key prefix {prefix}"));
    let stages: Vec<Stage> = if bench.args.only.is_empty() {
        ALL_STAGES.to_vec()
    } else {
        ALL_STAGES
            .into_iter()
            .filter(|s| bench.args.only.contains(s))
            .collect()
    };
    let mut result = Ok(());
    for stage in stages {
        note(&format!("stage {stage:?}"));
        result = match stage {
            Stage::Idle => bench.idle().await,
            Stage::Drain => bench.drain("drain", 100, &DRAIN_C100).await,
            Stage::DrainC1000 => bench.drain("drain-c1000", 1000, &DRAIN_C1000).await,
            Stage::E2e => bench.e2e().await,
            Stage::Latency => bench.latency().await,
            Stage::Recovery => bench.recovery().await,
            Stage::Bare => bench.bare().await,
            Stage::Bullmq => bench.bullmq().await,
            Stage::Browse => bench.browse().await,
        }
        .with_context(|| format!("stage {stage:?}"));
        if result.is_err() {
            break;
        }
    }
    ratios();
    let cleaned = bench.cleanup().await;
    result.and(cleaned)
}

/// Every figure printed so far, for the ratios at the end.
static FIGURES: Mutex<BTreeMap<String, f64>> = Mutex::new(BTreeMap::new());

/// Prints ours against the floor (the bare XREADGROUP COUNT 100 + XACK loop on the
/// same Redis) and against BullMQ, for the figures this run measured.
fn ratios() {
    // A copy: `figure` takes the lock again.
    let figures = FIGURES.lock().expect("figures lock").clone();
    let ratio = |key: &str, ours: &str, theirs: &str| {
        if let (Some(a), Some(b)) = (figures.get(ours), figures.get(theirs))
            && *b > 0.0
        {
            figure(key, format!("{:.2}", a / b));
        }
    };
    if figures.contains_key("bare_xreadgroup_jobs_per_s") {
        note("floor: bare XREADGROUP COUNT 100 + XACK, one connection, same Redis");
    }
    ratio(
        "drain_vs_floor",
        "drain_jobs_per_s",
        "bare_xreadgroup_jobs_per_s",
    );
    ratio(
        "redis_cpu_vs_floor",
        "redis_cpu_us_per_job",
        "bare_redis_cpu_us_per_job",
    );
    ratio(
        "drain_vs_bullmq",
        "drain_jobs_per_s",
        "bullmq_drain_jobs_per_s",
    );
    ratio(
        "redis_cpu_vs_bullmq",
        "redis_cpu_us_per_job",
        "bullmq_redis_cpu_us_per_job",
    );
    ratio(
        "enqueue_vs_bullmq",
        "enqueue_jobs_per_s",
        "bullmq_enqueue_jobs_per_s",
    );
}

struct Bench {
    args: SuiteArgs,
    exe: PathBuf,
    broker: Broker,
    admin: Admin,
    clk_tck: f64,
    /// Every queue a stage used, destroyed at the end.
    queues: Mutex<Vec<Queue>>,
}

fn figure(key: &str, value: impl std::fmt::Display) {
    let value = value.to_string();
    if let Ok(v) = value.parse::<f64>() {
        FIGURES
            .lock()
            .expect("figures lock")
            .insert(key.to_owned(), v);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{key}={value}");
    let _ = out.flush();
}

fn note(line: &str) {
    eprintln!("# {line}");
}

fn per_s(n: usize, d: Duration) -> u64 {
    (n as f64 / d.as_secs_f64()).round() as u64
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn noop_jobs(n: usize) -> impl Iterator<Item = NewJob> {
    (0..n).map(|_| NewJob::new("bench.noop", Bytes::from_static(NOOP_PAYLOAD)))
}

impl Bench {
    fn queue(&self, name: &str) -> anyhow::Result<Queue> {
        let queue = self.broker.queue(name)?;
        self.queues
            .lock()
            .expect("queue list lock")
            .push(queue.clone());
        Ok(queue)
    }

    async fn cleanup(&self) -> anyhow::Result<()> {
        let queues = std::mem::take(&mut *self.queues.lock().expect("queue list lock"));
        for q in queues {
            self.admin
                .destroy(&q)
                .await
                .with_context(|| format!("deleting the keys of queue {}", q.name()))?;
        }
        Ok(())
    }

    async fn info(&self, section: &str) -> anyhow::Result<String> {
        let mut conn = self.broker.connection().await?;
        Ok(redis::cmd("INFO")
            .arg(section)
            .query_async(&mut conn)
            .await?)
    }

    /// Redis CPU time so far, in seconds.
    async fn redis_cpu_s(&self) -> anyhow::Result<f64> {
        measure::parse_info_cpu(&self.info("cpu").await?)
            .context("INFO cpu has no used_cpu_sys/used_cpu_user")
    }

    async fn commandstats(&self) -> anyhow::Result<BTreeMap<String, CommandStat>> {
        Ok(measure::parse_commandstats(
            &self.info("commandstats").await?,
        ))
    }

    /// Prints what each Redis command cost per job between two readings. Commands
    /// run by scripts are counted on their own and inside `evalsha` as well.
    fn print_commandstats(
        &self,
        label: &str,
        jobs: usize,
        before: &BTreeMap<String, CommandStat>,
        after: &BTreeMap<String, CommandStat>,
    ) {
        note(&format!(
            "{label} commandstats (nested script commands are also inside evalsha):"
        ));
        for (name, d) in measure::commandstats_delta(before, after) {
            note(&format!(
                "  {name:<12} calls={:<8} usec={:<9} us_per_call={:<8.2} calls_per_job={:<7.4} us_per_job={:.3}",
                d.calls,
                d.usec,
                d.usec as f64 / d.calls as f64,
                d.calls as f64 / jobs as f64,
                d.usec as f64 / jobs as f64,
            ));
        }
    }

    /// Starts `queue-bench worker` on `queue` and waits for its `ready` line.
    async fn spawn_worker(&self, queue: &str, extra: &[&str]) -> anyhow::Result<WorkerProcess> {
        let mut child = Command::new(&self.exe)
            .arg("worker")
            .args(["--prefix", self.broker.prefix(), "--queue", queue])
            .args(extra)
            // Through the environment, so a password never shows in `ps`.
            .env("REDIS_URL", &self.args.redis_url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting queue-bench worker")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut worker = WorkerProcess {
            pid: child.id(),
            child,
            stdout: None,
        };
        // std pipes block: read the first line on a blocking thread. Killing the
        // worker (on timeout, or when `worker` drops) closes the pipe and ends it.
        let reading = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let n = reader.read_line(&mut line)?;
            std::io::Result::Ok((n, line, reader))
        });
        let (n, line, reader) = match tokio::time::timeout(Duration::from_secs(15), reading).await {
            Ok(read) => read.context("reading the worker's stdout")??,
            Err(_) => bail!("the worker did not get ready within 15 s"),
        };
        if n == 0 {
            bail!("the worker exited before it was ready");
        }
        if !line.starts_with("ready") {
            bail!("unexpected first line from the worker: {}", line.trim_end());
        }
        worker.stdout = Some(reader);
        Ok(worker)
    }

    /// Polls `Admin::stats` until `completed` reaches `n`.
    async fn wait_completed(&self, queue: &Queue, n: u64, every: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + STAGE_DEADLINE;
        loop {
            let stats = self.admin.stats(queue).await?;
            if stats.completed >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "gave up waiting: {} of {n} jobs completed ({stats:?})",
                    stats.completed
                );
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn idle(&self) -> anyhow::Result<()> {
        self.queue("idle")?;
        let mut w = self.spawn_worker("idle", &["--concurrency", "100"]).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss, _) = measure::memory_kib(w.pid)?;
        figure("worker_rss_idle_mb", mib(rss));
        w.stop().await
    }

    /// Enqueues `jobs` no-op jobs, then drains them with a worker process.
    async fn drain(&self, name: &str, concurrency: usize, keys: &DrainKeys) -> anyhow::Result<()> {
        let n = self.args.jobs;
        let queue = self.queue(name)?;
        let producer = Producer::new(self.broker.clone());

        let cpu0 = self.redis_cpu_s().await?;
        let started = Instant::now();
        producer.enqueue_many(&queue, noop_jobs(n)).await?;
        let enqueue = started.elapsed();
        let cpu1 = self.redis_cpu_s().await?;
        if keys.report_enqueue {
            figure("enqueue_jobs_per_s", per_s(n, enqueue));
            figure(
                "enqueue_redis_cpu_us_per_job",
                format!("{:.2}", (cpu1 - cpu0) * 1e6 / n as f64),
            );
        }

        let stats0 = self.commandstats().await?;
        let cpu1 = self.redis_cpu_s().await?;
        let concurrency = concurrency.to_string();
        let mut w = self
            .spawn_worker(name, &["--concurrency", &concurrency])
            .await?;
        let started = Instant::now();
        let ticks0 = measure::cpu_ticks(w.pid)?;
        let window = Window::start(self, Some(w.pid)).await?;
        self.wait_completed(&queue, n as u64, Duration::from_millis(10))
            .await?;
        let drained = started.elapsed();
        window
            .note_others(self, &format!("drain c{concurrency}"), Some(w.pid), drained)
            .await?;
        let ticks1 = measure::cpu_ticks(w.pid)?;
        let (_, peak) = measure::memory_kib(w.pid)?;
        let cpu2 = self.redis_cpu_s().await?;
        let stats1 = self.commandstats().await?;
        w.stop().await?;

        figure(keys.rate, per_s(n, drained));
        figure(
            keys.redis_cpu,
            format!("{:.2}", (cpu2 - cpu1) * 1e6 / n as f64),
        );
        figure(
            keys.worker_cpu,
            format!(
                "{:.2}",
                (ticks1 - ticks0) as f64 / self.clk_tck * 1e6 / n as f64
            ),
        );
        figure(keys.rss_peak, mib(peak));
        self.print_commandstats(&format!("drain c{concurrency}"), n, &stats0, &stats1);
        Ok(())
    }

    /// A worker process consumes while this process produces, 1,000 jobs per call.
    async fn e2e(&self) -> anyhow::Result<()> {
        let n = self.args.jobs;
        let queue = self.queue("e2e")?;
        let mut w = self.spawn_worker("e2e", &["--concurrency", "100"]).await?;
        let producer = Producer::new(self.broker.clone());
        let cpu0 = self.redis_cpu_s().await?;
        let ticks0 = measure::cpu_ticks(w.pid)?;
        let window = Window::start(self, Some(w.pid)).await?;
        let started = Instant::now();
        let produce = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut left = n;
                while left > 0 {
                    let chunk = left.min(1000);
                    producer.enqueue_many(&queue, noop_jobs(chunk)).await?;
                    left -= chunk;
                }
                anyhow::Ok(started.elapsed())
            })
        };
        self.wait_completed(&queue, n as u64, Duration::from_millis(10))
            .await?;
        let elapsed = started.elapsed();
        let ticks1 = measure::cpu_ticks(w.pid)?;
        let cpu1 = self.redis_cpu_s().await?;
        window
            .note_others(self, "e2e", Some(w.pid), elapsed)
            .await?;
        let produced = produce.await.context("producer task")??;
        w.stop().await?;
        figure("e2e_jobs_per_s", per_s(n, elapsed));
        figure(
            "e2e_redis_cpu_us_per_job",
            format!("{:.2}", (cpu1 - cpu0) * 1e6 / n as f64),
        );
        figure(
            "e2e_worker_cpu_us_per_job",
            format!(
                "{:.2}",
                (ticks1 - ticks0) as f64 / self.clk_tck * 1e6 / n as f64
            ),
        );
        note(&format!(
            "e2e: producer finished after {:.3} s, last job after {:.3} s",
            produced.as_secs_f64(),
            elapsed.as_secs_f64()
        ));
        Ok(())
    }

    /// Enqueues one job at a time at a steady rate and records, in the handler, the
    /// time since the producer called `enqueue` (one monotonic clock, µs).
    async fn latency(&self) -> anyhow::Result<()> {
        let rate = self.args.latency_rate;
        let warmup = rate; // one second, not counted
        let total = warmup + rate * self.args.latency_secs;
        let queue = self.queue("latency")?;
        // Its own connections, so the producer's and the worker's requests do not queue
        // behind each other in one pool.
        let worker_broker =
            Broker::connect(BrokerConfig::new(&self.args.redis_url).prefix(self.broker.prefix()))
                .await?;
        let anchor = Instant::now();
        let samples: Arc<Mutex<Vec<u64>>> =
            Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
        let recorded = samples.clone();
        let config = WorkerConfig {
            concurrency: 100.try_into().expect("nonzero"),
            ..WorkerConfig::default()
        };
        let worker =
            queue_core::worker::worker(&worker_broker, &queue, config, move |job: Job| {
                let recorded = recorded.clone();
                async move {
                    let now_us = anchor.elapsed().as_micros() as u64;
                    let p = job.payload();
                    if p.len() >= 16 {
                        let sent_us = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
                        let seq = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
                        if seq >= warmup {
                            recorded
                                .lock()
                                .expect("samples lock")
                                .push(now_us.saturating_sub(sent_us));
                        }
                    }
                    Ok(())
                }
            })?;
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(worker.run(shutdown.clone()));
        // Let the worker create its group and block on its first read.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let producer = Producer::new(self.broker.clone());
        let window = Window::start(self, None).await?;
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut sent = 0u64;
        let mut sends = tokio::task::JoinSet::new();
        while sent < total {
            tick.tick().await;
            let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            while sent < due {
                let producer = producer.clone();
                let queue = queue.clone();
                let seq = sent;
                sends.spawn(async move {
                    let mut payload = Vec::with_capacity(16);
                    payload.extend_from_slice(&(anchor.elapsed().as_micros() as u64).to_le_bytes());
                    payload.extend_from_slice(&seq.to_le_bytes());
                    producer
                        .enqueue(&queue, NewJob::new("bench.latency", payload))
                        .await
                });
                sent += 1;
            }
            while let Some(r) = sends.try_join_next() {
                r.context("enqueue task")??;
            }
        }
        while let Some(r) = sends.join_next().await {
            r.context("enqueue task")??;
        }
        let offered = started.elapsed();
        window.note_others(self, "latency", None, offered).await?;
        self.wait_completed(&queue, total, Duration::from_millis(20))
            .await?;
        shutdown.cancel();
        running.await.context("latency worker task")??;

        let mut v = std::mem::take(&mut *samples.lock().expect("samples lock"));
        v.sort_unstable();
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        figure("latency_p50_ms", ms(measure::percentile(&v, 50.0)));
        figure("latency_p99_ms", ms(measure::percentile(&v, 99.0)));
        figure("latency_max_ms", ms(v.last().copied().unwrap_or(0)));
        note(&format!(
            "latency: {} samples after {warmup} warm-up jobs, offered {:.0} jobs/s",
            v.len(),
            total as f64 / offered.as_secs_f64()
        ));
        Ok(())
    }

    /// SIGKILLs a worker holding 10 long jobs; times until another worker (default
    /// settings, started before the kill) has completed all 10.
    async fn recovery(&self) -> anyhow::Result<()> {
        const JOBS: u64 = 10;
        let queue = self.queue("recovery")?;
        // Default settings: concurrency 10, so it holds exactly the 10 jobs. Each run
        // sleeps an hour: none ends before the kill.
        let mut doomed = self
            .spawn_worker(
                "recovery",
                &["--sleep-min-ms", "3600000", "--sleep-ms", "3600000"],
            )
            .await?;
        let producer = Producer::new(self.broker.clone());
        producer
            .enqueue_many(&queue, noop_jobs(JOBS as usize))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.admin.stats(&queue).await?;
            if s.active == JOBS && s.waiting == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("the first worker did not take all {JOBS} jobs: {s:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut heir = self.spawn_worker("recovery", &[]).await?;
        let killed = Instant::now();
        doomed.kill()?;
        let limit = Duration::from_secs(self.args.recovery_timeout_s);
        let recovered = loop {
            let s = self.admin.stats(&queue).await?;
            if s.completed >= JOBS {
                break Some(killed.elapsed());
            }
            if killed.elapsed() > limit {
                note(&format!(
                    "recovery: {} of {JOBS} jobs completed {} s after the kill: {s:?}",
                    s.completed,
                    limit.as_secs()
                ));
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        heir.stop().await?;
        match recovered {
            Some(d) => figure("recovery_s", format!("{:.2}", d.as_secs_f64())),
            None => figure("recovery_s", "timeout"),
        }
        Ok(())
    }

    /// The ceiling: plain XADD, then XREADGROUP COUNT 100 + XACK of the batch, one
    /// round trip each, no scripts and no XDEL.
    /// The operator's reads of a queue with a backlog of `--jobs` waiting jobs
    /// (no worker): a job found by id (the newest, by its UUIDv7 id and by an
    /// id of the producer's own, which gives no hint where to look), a job that
    /// is nowhere (every place read to its end), the first page of a listing,
    /// and a day of history. Median of 5 of each, with Redis's CPU per lookup.
    async fn browse(&self) -> anyhow::Result<()> {
        let n = self.args.jobs;
        let queue = self.queue("browse")?;
        let producer = Producer::new(self.broker.clone());
        producer.enqueue_many(&queue, noop_jobs(n)).await?;
        let newest = producer
            .enqueue(
                &queue,
                NewJob::new("bench.noop", Bytes::from_static(NOOP_PAYLOAD)),
            )
            .await?;
        let custom = producer
            .enqueue(
                &queue,
                NewJob::new("bench.noop", Bytes::from_static(NOOP_PAYLOAD)).id("order-42"),
            )
            .await?;
        let missing = "no-such-job";
        let cases = [
            ("find_job_newest_ms", newest.id()),
            ("find_job_own_id_ms", custom.id()),
            ("find_job_missing_ms", missing),
        ];
        for (key, id) in cases {
            let mut times = Vec::new();
            let cpu0 = self.redis_cpu_s().await?;
            for _ in 0..5 {
                let started = Instant::now();
                let found = self.admin.find_job(&queue, id).await?;
                times.push(started.elapsed());
                anyhow::ensure!(found.is_some() == (id != missing), "{key}: found {found:?}");
            }
            let cpu = (self.redis_cpu_s().await? - cpu0) / 5.0;
            times.sort();
            figure(key, format!("{:.1}", times[2].as_secs_f64() * 1000.0));
            note(&format!(
                "{key}: redis cpu {:.1} ms per lookup, backlog {n}",
                cpu * 1000.0
            ));
        }
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            self.admin
                .jobs(&queue, queue_core::JobState::Waiting, None, 50)
                .await?;
            times.push(started.elapsed());
        }
        times.sort();
        figure(
            "jobs_page_ms",
            format!("{:.2}", times[2].as_secs_f64() * 1000.0),
        );
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            self.admin.history(&queue, 24 * 60).await?;
            times.push(started.elapsed());
        }
        times.sort();
        figure(
            "history_day_ms",
            format!("{:.2}", times[2].as_secs_f64() * 1000.0),
        );
        Ok(())
    }

    async fn bare(&self) -> anyhow::Result<()> {
        let n = self.args.jobs;
        let queue = self.queue("bare")?;
        let stream = queue.keys().scratch("bare");
        let mut conn = self.broker.connection().await?;
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg("g")
            .arg("$")
            .arg("MKSTREAM")
            .query_async::<()>(&mut conn)
            .await?;
        // About the size of a no-op job's encoded envelope.
        let value = vec![b'x'; 90];
        let cpu0 = self.redis_cpu_s().await?;
        let started = Instant::now();
        let mut left = n;
        while left > 0 {
            let chunk = left.min(1000);
            let mut pipe = redis::pipe();
            for _ in 0..chunk {
                pipe.cmd("XADD")
                    .arg(&stream)
                    .arg("*")
                    .arg("e")
                    .arg(&value)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
            left -= chunk;
        }
        let added = started.elapsed();
        let cpu1 = self.redis_cpu_s().await?;
        let stats0 = self.commandstats().await?;
        let cpu1b = self.redis_cpu_s().await?;
        let window = Window::start(self, None).await?;
        let started = Instant::now();
        let mut acked = 0usize;
        loop {
            let reply: Option<XReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("COUNT")
                .arg(100)
                .arg("STREAMS")
                .arg(&stream)
                .arg(">")
                .query_async(&mut conn)
                .await?;
            let ids: Vec<String> = reply
                .into_iter()
                .flatten()
                .flat_map(|(_, entries)| entries.into_iter().map(|(id, _)| id))
                .collect();
            if ids.is_empty() {
                break;
            }
            acked += redis::cmd("XACK")
                .arg(&stream)
                .arg("g")
                .arg(&ids)
                .query_async::<usize>(&mut conn)
                .await?;
        }
        let drained = started.elapsed();
        let cpu2 = self.redis_cpu_s().await?;
        let stats1 = self.commandstats().await?;
        window.note_others(self, "bare", None, drained).await?;
        if acked != n {
            bail!("bare loop acknowledged {acked} of {n} entries");
        }
        figure("bare_xadd_jobs_per_s", per_s(n, added));
        figure(
            "bare_xadd_redis_cpu_us_per_job",
            format!("{:.2}", (cpu1 - cpu0) * 1e6 / n as f64),
        );
        figure("bare_xreadgroup_jobs_per_s", per_s(n, drained));
        figure(
            "bare_redis_cpu_us_per_job",
            format!("{:.2}", (cpu2 - cpu1b) * 1e6 / n as f64),
        );
        self.print_commandstats("bare XREADGROUP+XACK", n, &stats0, &stats1);
        Ok(())
    }
}

/// BullMQ's drain script and its `node_modules` (installed by `scripts/bench.sh`).
const BULLMQ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bullmq");

impl Bench {
    /// BullMQ's drain of the same shape as ours (`bullmq/drain.mjs`): N no-op jobs
    /// by addBulk, then one Worker at concurrency 100 drains them; its figures are
    /// passed through with the `bullmq_` prefix.
    async fn bullmq(&self) -> anyhow::Result<()> {
        let dir = std::path::Path::new(BULLMQ_DIR);
        if !dir.join("node_modules/bullmq").is_dir() {
            note(&format!(
                "bullmq: skipped, {} has no node_modules (scripts/bench.sh runs `npm ci` there)",
                dir.display()
            ));
            return Ok(());
        }
        let window = Window::start(self, None).await?;
        let started = Instant::now();
        let out = tokio::process::Command::new("node")
            .arg("drain.mjs")
            .args([
                "--jobs",
                &self.args.jobs.to_string(),
                "--concurrency",
                "100",
            ])
            .current_dir(dir)
            .env("REDIS_URL", &self.args.redis_url)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output();
        let out = tokio::time::timeout(STAGE_DEADLINE, out)
            .await
            .context("BullMQ's drain took too long")?
            .context("running node bullmq/drain.mjs")?;
        // Its node process is not ours: it shows up as "other processes" here.
        window
            .note_others(self, "bullmq (enqueue and drain)", None, started.elapsed())
            .await?;
        if !out.status.success() {
            bail!("node bullmq/drain.mjs exited with {}", out.status);
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.split_once('=') {
                Some((key, value)) if key.starts_with("bullmq_") => figure(key, value),
                _ => note(&format!("bullmq: {line}")),
            }
        }
        Ok(())
    }
}

/// CPU readings at the start of a measured window, to tell afterwards how much
/// of the machine went to processes outside the benchmark (other work skews it).
struct Window {
    machine: u64,
    own: u64,
    worker: u64,
    redis_s: f64,
}

impl Window {
    async fn start(bench: &Bench, worker: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self {
            machine: measure::machine_busy_ticks()?,
            own: measure::cpu_ticks(std::process::id())?,
            worker: worker.map(measure::cpu_ticks).transpose()?.unwrap_or(0),
            redis_s: bench.redis_cpu_s().await?,
        })
    }

    /// Notes the share of one core that other processes used during the window.
    async fn note_others(
        &self,
        bench: &Bench,
        label: &str,
        worker: Option<u32>,
        elapsed: Duration,
    ) -> anyhow::Result<()> {
        let machine = measure::machine_busy_ticks()? - self.machine;
        let own = measure::cpu_ticks(std::process::id())? - self.own;
        let worker = worker.map(measure::cpu_ticks).transpose()?.unwrap_or(0) - self.worker;
        let redis = ((bench.redis_cpu_s().await? - self.redis_s) * bench.clk_tck).round() as u64;
        let others = machine.saturating_sub(own + worker + redis);
        note(&format!(
            "{label}: {:.2} s; other processes used {:.0}% of a core meanwhile",
            elapsed.as_secs_f64(),
            others as f64 / bench.clk_tck / elapsed.as_secs_f64() * 100.0
        ));
        Ok(())
    }
}

/// `XREADGROUP` reply: per stream, its name and entries (id, fields).
type XReadReply = Vec<(String, Vec<(String, redis::Value)>)>;

/// A `queue-bench worker` child process; killed if dropped while running.
struct WorkerProcess {
    child: Child,
    pid: u32,
    /// Kept open so the worker never writes into a closed pipe.
    stdout: Option<BufReader<ChildStdout>>,
}

impl WorkerProcess {
    /// SIGTERM, then waits for the graceful shutdown (SIGKILL after 40 s).
    async fn stop(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("worker {} exited with {status}", self.pid);
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill()?;
                bail!("worker {} did not stop within 40 s of SIGTERM", self.pid);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL, and reaps the process.
    fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing the worker")?;
        self.child.wait().context("reaping the worker")?;
        Ok(())
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stdout.take();
    }
}
