//! Scheduled payment checks at scale: `BENCH_PAYMENTS` (50,000) QRs tracked in
//! the bank simulator and a private database, each checked twice by the real
//! scheduler (the bank answers `pending`, then `completed`), the first checks
//! due over `BENCH_SPREAD` (10s), the second `BENCH_DELAY` (1s) after the
//! first. Prints `key=value` lines: checks executed per second and how late
//! checks ran against their due time (`checked_at - due_at`, p50/p99).
//!
//! Then "paid -> confirmed": `BENCH_CONFIRM_PAYMENTS` (200) QRs pending at
//! the bank, each paid at its own moment, confirmed once with the bank's
//! notification (the check the gateway's `POST /api/payments/notifications`
//! enqueues, `jobs::rows::notified_check_job`, enqueued here as the route does
//! once the signature checks out: the HTTP hop is not in the figure) and once
//! by polling alone, with the pending interval shortened to
//! `BENCH_POLL_DELAY` (10s; the default 2 min scales the same way: a payment
//! waits for the next check, uniformly up to the interval). Prints p50, p95
//! and max of `paid_at - moment paid` for each.
//!
//! `cargo bench -p payment-scheduler --bench checks` (or `scripts/bench.sh
//! payments`); needs the Redis and PostgreSQL the tests use. Other knobs:
//! `BENCH_CONCURRENCY` (64 per replica), `BENCH_REPLICAS` (1); 0 payments
//! skips a part.

use std::time::{Duration, Instant};

use ::payments::{Bank, CreateQr, QrBank, schedule};
use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use payment_scheduler::config::{BankConfig, CleanupConfig, Config, ScheduleConfig};
use queue_core::Every;
use queue_core::testing::TestRedis;
use service::config::ReconcileConfig;
use service::testing::{Running, bench};
use store::payments::{Currency, PaymentStatus};
use store::testing::TestDb;
use upstream_sim::{QrStatus, Sim, SimConfig};

fn main() -> anyhow::Result<()> {
    bench::run(bench())
}

async fn bench() -> anyhow::Result<()> {
    let sim = Sim::start(SimConfig::default()).await?;
    let bank_config = BankConfig {
        url: sim.url(),
        api_key: None,
        timeout: Duration::from_secs(10),
        bnb: None,
    };
    checks_at_scale(&sim, &bank_config).await?;
    paid_to_confirmed(&sim, &bank_config).await?;
    sim.stop().await;
    Ok(())
}

/// The scheduler's config for a bench on `redis` and `db`.
fn scheduler_config(
    redis: &TestRedis,
    db: &TestDb,
    bank: &BankConfig,
    concurrency: usize,
    delay_pending: Duration,
) -> anyhow::Result<Config> {
    let mut worker = jobs::PAYMENT_CHECKS.worker_config();
    worker.concurrency = concurrency.try_into().context("BENCH_CONCURRENCY")?;
    Ok(Config {
        base: service::testing::base_config(&redis.prefix, &db.url),
        worker,
        bank: bank.clone(),
        schedule: ScheduleConfig {
            delay_pending,
            ..ScheduleConfig::default()
        },
        cleanup: CleanupConfig {
            every: Every::daily_at(3, 0)?,
            retention: Duration::from_secs(30 * 86_400),
        },
        reconcile: ReconcileConfig {
            interval: Duration::from_secs(3600),
            after: Duration::from_secs(3600),
            batch: 500,
        },
    })
}

/// `n` QRs created at the bank as the gateway creates them; their ids.
async fn create_qrs(bank: &QrBank, n: usize) -> anyhow::Result<Vec<String>> {
    Ok(futures::stream::iter(0..n)
        .map(|i| {
            let bank = bank.clone();
            async move {
                bank.create_qr(&CreateQr {
                    amount_cents: 1_000 + (i as i64 % 90_000),
                    currency: Currency::Bob,
                    description: format!("bench {i}"),
                    expires_at: Some(Utc::now() + chrono::Duration::hours(2)),
                })
                .await
                .map(|qr| qr.qr_id)
            }
        })
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?)
}

/// Polls until `sql` (a count) is 0, within `within`.
async fn until_none(
    db: &TestDb,
    sql: &'static str,
    within: Duration,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let left: i64 = sqlx::query_scalar(sql).fetch_one(&db.pool).await?;
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} payments {what} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn checks_at_scale(sim: &Sim, bank_config: &BankConfig) -> anyhow::Result<()> {
    let n: usize = bench::knob("BENCH_PAYMENTS", 50_000);
    if n == 0 {
        return Ok(());
    }
    let spread = bench::duration_knob("BENCH_SPREAD", Duration::from_secs(10));
    let delay = bench::duration_knob("BENCH_DELAY", Duration::from_secs(1));
    let concurrency: usize = bench::knob("BENCH_CONCURRENCY", 64);
    let replicas: usize = bench::knob("BENCH_REPLICAS", 1);

    sim.bank()
        .set_default_script(vec![QrStatus::Pending, QrStatus::Completed]);
    let bank = QrBank::new(bank_config.clone())?;

    let started = Instant::now();
    let qr_ids = create_qrs(&bank, n).await?;
    println!("payments={n}");
    println!("seed_qrs_s={:.1}", started.elapsed().as_secs_f64());

    let db = TestDb::new().await;
    let redis = TestRedis::new().await;
    let queue = redis.priority_queue(jobs::PAYMENT_CHECKS.name);

    // The payments, due from `start` over `spread`, in one statement.
    let seeding = Instant::now();
    let margin = Duration::from_secs(3) + Duration::from_micros(60 * n as u64);
    let start = Utc::now() + chrono::Duration::from_std(margin)?;
    let step_us = spread.as_micros() as f64 / n.max(1) as f64;
    let rows: Vec<(i64, chrono::DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO payments (qr_id, amount_cents, currency, description, status,
                               qr_image_base64, expires_at, next_check_at)
         SELECT q, 1000, 'BOB', 'bench', 'pending', 'x', now() + interval '2 hours',
                $2 + make_interval(secs => (o - 1) * $3 / 1e6)
         FROM unnest($1::text[]) WITH ORDINALITY AS t(q, o)
         RETURNING id, next_check_at",
    )
    .bind(&qr_ids)
    .bind(start)
    .bind(step_us)
    .fetch_all(&db.pool)
    .await
    .context("seeding payments")?;
    let jobs = rows
        .iter()
        .map(|(id, due)| schedule::check_job(*id, 1, PaymentStatus::Pending, *due));
    redis.producer.enqueue_many(&queue, jobs).await?;
    let late_seed = Utc::now() > start;
    println!("seed_db_and_jobs_s={:.1}", seeding.elapsed().as_secs_f64());
    if late_seed {
        println!("warning=seeding_overran_the_first_due_time");
    }

    let config = scheduler_config(&redis, &db, bank_config, concurrency, delay)?;
    let mut running = Vec::new();
    for _ in 0..replicas {
        running.push(Running::spawn(
            payment_scheduler::start(config.clone()).await?,
        ));
    }
    until_none(
        &db,
        "SELECT count(*) FROM payments WHERE next_check_at IS NOT NULL",
        Duration::from_secs(900),
        "still checked",
    )
    .await?;
    for r in running {
        r.stop().await;
    }

    let (checks, span_s, p50, p99, max): (i64, f64, f64, f64, f64) = sqlx::query_as(
        "SELECT count(*),
                extract(epoch FROM max(checked_at) - min(due_at))::float8,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM checked_at - due_at) * 1000),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM checked_at - due_at) * 1000),
                max(extract(epoch FROM checked_at - due_at) * 1000)::float8
         FROM payment_checks",
    )
    .fetch_one(&db.pool)
    .await?;
    let (movements, completed): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM account_movements),
                (SELECT count(*) FROM payments WHERE status = 'completed')",
    )
    .fetch_one(&db.pool)
    .await?;
    let offered = checks as f64 / (spread + delay).as_secs_f64().max(0.001);
    println!("concurrency={concurrency}");
    println!("replicas={replicas}");
    println!("spread_s={:.1}", spread.as_secs_f64());
    println!("checks={checks}");
    println!("offered_checks_per_s={offered:.0}");
    println!("checks_per_s={:.0}", checks as f64 / span_s.max(0.001));
    println!("lateness_p50_ms={p50:.0}");
    println!("lateness_p99_ms={p99:.0}");
    println!("lateness_max_ms={max:.0}");
    println!("completed={completed}");
    println!("movements={movements}");
    anyhow::ensure!(movements == completed, "one movement per completed payment");
    db.cleanup().await;
    redis.finish().await;
    Ok(())
}

/// Paid -> confirmed, with the notification and by polling alone.
async fn paid_to_confirmed(sim: &Sim, bank_config: &BankConfig) -> anyhow::Result<()> {
    let n: usize = bench::knob("BENCH_CONFIRM_PAYMENTS", 200);
    if n == 0 {
        return Ok(());
    }
    let poll_delay = bench::duration_knob("BENCH_POLL_DELAY", Duration::from_secs(10));
    println!("confirm_payments={n}");
    // Notified: paid 50 a second, the pending interval left at its default
    // (2 min), so only the notification can confirm within the run.
    let notified = confirm_latencies(
        sim,
        bank_config,
        n,
        ScheduleConfig::default().delay_pending,
        Duration::from_millis(20),
        true,
    )
    .await?;
    print_latencies("notified", &notified);
    // Polling alone: paid at moments spread over one interval after the
    // first check, so the wait for the next check covers the interval.
    let polled = confirm_latencies(
        sim,
        bank_config,
        n,
        poll_delay,
        poll_delay / u32::try_from(n).unwrap_or(u32::MAX),
        false,
    )
    .await?;
    println!("poll_interval_s={:.0}", poll_delay.as_secs_f64());
    print_latencies("polled", &polled);
    // The default interval, computed: the wait is uniform over it.
    let default = ScheduleConfig::default().delay_pending.as_secs_f64() * 1000.0;
    println!("polled_default_2m_computed_p50_ms={:.0}", default * 0.5);
    println!("polled_default_2m_computed_p95_ms={:.0}", default * 0.95);
    println!("polled_default_2m_computed_max_ms={default:.0}");
    Ok(())
}

fn print_latencies(what: &str, ms: &[f64]) {
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!("{what}_confirm_p50_ms={:.0}", at(0.5));
    println!("{what}_confirm_p95_ms={:.0}", at(0.95));
    println!("{what}_confirm_max_ms={:.0}", at(1.0));
}

/// `n` payments pending at the bank, their first check made, then each paid
/// `every` after the one before (notified at once when `notify`), the
/// scheduler polling pending payments every `delay_pending`: how long after
/// its payment each was confirmed (`paid_at`), in ms, sorted.
async fn confirm_latencies(
    sim: &Sim,
    bank_config: &BankConfig,
    n: usize,
    delay_pending: Duration,
    every: Duration,
    notify: bool,
) -> anyhow::Result<Vec<f64>> {
    let bank = QrBank::new(bank_config.clone())?;
    sim.bank().set_default_script(vec![QrStatus::Pending]);
    let qr_ids = create_qrs(&bank, n).await?;
    let db = TestDb::new().await;
    let redis = TestRedis::new().await;
    let queue = redis.priority_queue(jobs::PAYMENT_CHECKS.name);
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO payments (qr_id, amount_cents, currency, description, status,
                               qr_image_base64, expires_at, next_check_at)
         SELECT q, 1000, 'BOB', 'bench', 'pending', 'x', now() + interval '2 hours', now()
         FROM unnest($1::text[]) AS t(q)
         RETURNING id, qr_id",
    )
    .bind(&qr_ids)
    .fetch_all(&db.pool)
    .await
    .context("seeding payments")?;
    let first = rows
        .iter()
        .map(|(id, _)| schedule::check_job(*id, 1, PaymentStatus::Pending, Utc::now()));
    redis.producer.enqueue_many(&queue, first).await?;
    let config = scheduler_config(&redis, &db, bank_config, 64, delay_pending)?;
    let running = Running::spawn(payment_scheduler::start(config).await?);
    until_none(
        &db,
        "SELECT count(*) FROM payments WHERE checks_made = 0",
        Duration::from_secs(120),
        "without their first check",
    )
    .await?;

    let mut paid: Vec<(i64, DateTime<Utc>)> = Vec::with_capacity(n);
    let start = Instant::now();
    for (i, (id, qr_id)) in rows.iter().enumerate() {
        // Each at its own moment, not in a burst.
        let at = start + every * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at.into()).await;
        sim.bank().pay(qr_id);
        paid.push((*id, Utc::now()));
        if notify {
            redis
                .producer
                .enqueue(&queue, jobs::rows::notified_check_job(*id))
                .await?;
        }
    }
    until_none(
        &db,
        "SELECT count(*) FROM payments WHERE status <> 'completed'",
        delay_pending * 2 + Duration::from_secs(60),
        "not confirmed",
    )
    .await?;
    running.stop().await;
    let confirmed: std::collections::HashMap<i64, DateTime<Utc>> =
        sqlx::query_as::<_, (i64, DateTime<Utc>)>("SELECT id, paid_at FROM payments")
            .fetch_all(&db.pool)
            .await?
            .into_iter()
            .collect();
    let (movements,): (i64,) = sqlx::query_as("SELECT count(*) FROM account_movements")
        .fetch_one(&db.pool)
        .await?;
    anyhow::ensure!(movements as usize == n, "one movement per payment");
    let mut ms: Vec<f64> = paid
        .iter()
        .map(|(id, at)| (confirmed[id] - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    db.cleanup().await;
    redis.finish().await;
    Ok(ms)
}
