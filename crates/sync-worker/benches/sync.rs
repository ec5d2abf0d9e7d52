//! `scripts/bench.sh sync`: customers/s of a whole Wispro sync against the
//! simulator, once creating (bcrypt cost 10 for every new user) and once
//! updating the same customers (no hashing), beside the bcrypt bound of this
//! machine (hashes/s on every core, measured in the same run). Prints one
//! `key=value` line per figure; progress goes to stderr.
//!   SYNC_BENCH_CLIENTS (10000), SYNC_BCRYPT_COST (10)

use std::time::{Duration, Instant};

use queue_core::testing::TestRedis;
use service::testing::{Running, bench};
use store::sync_runs::{self, SyncStatus};
use store::testing::TestDb;
use sync_worker::{Config, WisproConfig};
use upstream_sim::{Sim, SimConfig};

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the arguments.
    bench::run(bench());
}

async fn bench() {
    let clients: usize = bench::knob("SYNC_BENCH_CLIENTS", 10_000);
    let cost: u32 = bench::knob("SYNC_BCRYPT_COST", 10);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("# {clients} customers, bcrypt cost {cost}, {cores} cores");

    let bound = bcrypt_bound(cost, cores).await;
    println!("bcrypt_hashes_per_s={bound:.1}");

    let mut sim = SimConfig::default();
    sim.wispro.clients = clients;
    sim.wispro.seed = 42;
    let sim = Sim::start(sim).await.expect("the simulator starts");
    let redis = TestRedis::new().await;
    let queue = redis.queue(jobs::WISPRO_SYNC.name);
    let db = TestDb::new().await;
    let config = Config {
        base: service::testing::base_config(&redis.prefix, &db.url),
        worker: service::testing::fast_worker_config(&jobs::WISPRO_SYNC),
        wispro: WisproConfig {
            url: sim.url(),
            token: service::Secret::new(upstream_sim::wispro::DEFAULT_TOKEN),
            timeout: Duration::from_secs(30),
        },
        bcrypt_cost: cost,
        hash_threads: cores.max(1).try_into().expect("nonzero"),
        progress_every: 10,
        page_attempts: sync_worker::config::DEFAULT_PAGE_ATTEMPTS,
        page_backoff: sync_worker::config::DEFAULT_PAGE_BACKOFF,
        max_passes: sync_worker::config::DEFAULT_MAX_PASSES,
        reconcile: service::config::ReconcileConfig {
            interval: Duration::from_secs(30),
            after: Duration::from_secs(600),
            batch: 1,
        },
    };
    let worker = Running::spawn(sync_worker::start(config).await.expect("the worker starts"));

    let (created, secs) = run_once(&db, &redis, &queue).await;
    println!("sync_create_customers_per_s={:.1}", clients as f64 / secs);
    println!("sync_created_users={created}");
    println!("sync_create_users_per_s={:.1}", created as f64 / secs);
    println!(
        "sync_create_vs_bcrypt_bound={:.2}",
        (created as f64 / secs) / bound
    );
    let (_, secs) = run_once(&db, &redis, &queue).await;
    println!("sync_update_customers_per_s={:.1}", clients as f64 / secs);

    worker.stop().await;
    sim.stop().await;
    redis.finish().await;
    db.cleanup().await;
}

/// Hashes on every core for about two seconds: the most creates/s can be.
async fn bcrypt_bound(cost: u32, cores: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..cores)
        .map(|i| {
            tokio::task::spawn_blocking(move || {
                let mut n = 0u64;
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(2) {
                    bcrypt::hash_with_result(format!("{:08}", i as u64 * 1_000_000 + n), cost)
                        .expect("hash");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("hashing thread");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// One whole run; its created count and seconds.
async fn run_once(db: &TestDb, redis: &TestRedis, queue: &queue_core::Queue) -> (i32, f64) {
    let run = {
        let mut conn = db.pool.acquire().await.expect("conn");
        sync_runs::start(&mut conn, "bench", 100)
            .await
            .expect("a run")
    };
    let job = jobs::new_job(&jobs::v1::WisproSyncRun {
        run_id: run.id,
        requested_by: "bench".into(),
    });
    let started = Instant::now();
    redis.producer.enqueue(queue, job).await.expect("enqueue");
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let r = sync_runs::get(&mut conn, run.id)
            .await
            .expect("get")
            .expect("row");
        if matches!(r.status, SyncStatus::Completed | SyncStatus::Failed) {
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(r.status, SyncStatus::Completed, "{:?}", r.failure);
            eprintln!(
                "# run {}: created {} updated {} skipped {} errors {} in {secs:.2} s",
                r.id, r.created, r.updated, r.skipped, r.errors
            );
            return (r.created, secs);
        }
    }
}
