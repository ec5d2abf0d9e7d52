//! Scheduled payment checks at scale: `BENCH_PAYMENTS` (50,000) QRs tracked in
//! the bank simulator and a private database, each checked twice by the real
//! scheduler (the bank answers `pending`, then `completed`), the first checks
//! due over `BENCH_SPREAD` (10s), the second `BENCH_DELAY` (1s) after the
//! first. Prints `key=value` lines: checks executed per second and how late
//! checks ran against their due time (`checked_at - due_at`, p50/p99).
//!
//! `cargo bench -p payment-scheduler --bench checks` (or `scripts/bench.sh
//! payments`); needs the Redis and PostgreSQL the tests use. Other knobs:
//! `BENCH_CONCURRENCY` (64 per replica), `BENCH_REPLICAS` (1).

use std::time::{Duration, Instant};

use ::payments::{Bank, CreateQr, QrBank, schedule};
use anyhow::Context;
use chrono::Utc;
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
    let n: usize = bench::knob("BENCH_PAYMENTS", 50_000);
    let spread = bench::duration_knob("BENCH_SPREAD", Duration::from_secs(10));
    let delay = bench::duration_knob("BENCH_DELAY", Duration::from_secs(1));
    let concurrency: usize = bench::knob("BENCH_CONCURRENCY", 64);
    let replicas: usize = bench::knob("BENCH_REPLICAS", 1);

    let sim = Sim::start(SimConfig::default()).await?;
    sim.bank()
        .set_default_script(vec![QrStatus::Pending, QrStatus::Completed]);
    let bank_config = BankConfig {
        url: sim.url(),
        api_key: None,
        timeout: Duration::from_secs(10),
        bnb: None,
    };
    let bank = QrBank::new(bank_config.clone())?;

    // The QRs, created at the bank as the gateway creates them.
    let started = Instant::now();
    let qr_ids: Vec<String> = futures::stream::iter(0..n)
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
        .collect::<Result<_, _>>()?;
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

    let mut worker = jobs::PAYMENT_CHECKS.worker_config();
    worker.concurrency = concurrency.try_into().context("BENCH_CONCURRENCY")?;
    let config = Config {
        base: service::testing::base_config(&redis.prefix, &db.url),
        worker,
        bank: bank_config,
        schedule: ScheduleConfig {
            delay_pending: delay,
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
    };
    let mut running = Vec::new();
    for _ in 0..replicas {
        running.push(Running::spawn(
            payment_scheduler::start(config.clone()).await?,
        ));
    }
    let run = Instant::now();
    let deadline = run + Duration::from_secs(900);
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM payments WHERE next_check_at IS NOT NULL")
                .fetch_one(&db.pool)
                .await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} payments still checked after 15 min"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    sim.stop().await;
    Ok(())
}
