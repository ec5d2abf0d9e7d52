//! The system under chaos: the real gateway and two qr-workers, each a process
//! of its own, on a private Redis with `appendfsync always`. While registrations
//! arrive the workers are SIGKILLed and restarted every couple of seconds and
//! Redis is SIGKILLed once and restarted from its AOF. Afterwards every
//! registration answered 201 and became a `ready` row with a readable QR file,
//! nothing is dead-lettered and no temporary file is left: the consistency rule
//! (docs/architecture.md) holding end to end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use queue_core::testing::{PrivateRedis, eventually_within};
use queue_core::{Admin, Broker, BrokerConfig};
use serde_json::json;
use store::persons::{self, QrStatus};
use store::testing::TestDb;

use crate::helpers::USER_TOKEN;
use crate::processes::{listening_addr, start_gateway, start_qr_worker};

const REGISTRATIONS: usize = 1_500;
const CLIENTS: usize = 8;
/// Spreads the registrations over several seconds, so that the kills below
/// land while they arrive.
const CLIENT_PACE: Duration = Duration::from_millis(40);
const KILL_EVERY: Duration = Duration::from_secs(2);
/// Redis stays down for this many kill ticks.
const REDIS_DOWN_TICKS: usize = 3;
const PREFIX: &str = "chaos";
/// How long everything may take to settle once the load and the kills ended.
const SETTLE: Duration = Duration::from_secs(40);

/// What one registration got back.
struct Answer {
    document: String,
    status: u16,
    id: Option<i64>,
    took: Duration,
}

/// Registers `REGISTRATIONS` people from `CLIENTS` concurrent clients.
async fn register_all(addr: String) -> Vec<Answer> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (next, addr) = (next.clone(), addr.clone());
        clients.spawn(async move {
            let http = reqwest::Client::new();
            let mut pace = tokio::time::interval(CLIENT_PACE);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REGISTRATIONS {
                    return answers;
                }
                pace.tick().await;
                let document = format!("C-{i:05}");
                let sent_at = Instant::now();
                let sent = http
                    .post(format!("http://{addr}/api/persons"))
                    .bearer_auth(USER_TOKEN)
                    .json(&json!({"document": document, "first_name": "Ana", "last_name": "Rey"}))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                let answer = match sent {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let body: serde_json::Value = res.json().await.unwrap_or_default();
                        Answer {
                            document,
                            status,
                            id: body["id"].as_i64(),
                            took: sent_at.elapsed(),
                        }
                    }
                    // No answer at all counts as a failure like a 5xx.
                    Err(_) => Answer {
                        document,
                        status: 0,
                        id: None,
                        took: sent_at.elapsed(),
                    },
                };
                answers.push(answer);
            }
        });
    }
    let mut all = Vec::with_capacity(REGISTRATIONS);
    while let Some(answers) = clients.join_next().await {
        all.extend(answers.expect("a client task does not panic"));
    }
    all
}

/// Temporary files (`.NAME.<16 hex>.tmp`) anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_killed_workers_and_a_killed_redis_and_all_become_readable_qr_codes()
{
    let began = Instant::now();
    let mut redis = PrivateRedis::start_with_aof().await;
    let redis_url = redis.url();
    let db = TestDb::new().await;
    let storage = tempfile::tempdir().expect("tempdir");
    let storage_dir = storage.path().to_str().expect("utf-8 path");
    let common = [
        ("REDIS_URL", redis_url.as_str()),
        ("RSQ_PREFIX", PREFIX),
        ("DATABASE_URL", db.url.as_str()),
        ("STORAGE_DIR", storage_dir),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ];
    let gateway = start_gateway(&common);
    let worker_vars = [
        &common[..],
        &[
            ("HEALTH_ADDR", "127.0.0.1:0"),
            ("QR_VISIBILITY_TIMEOUT", "1s"),
            ("QR_HEARTBEAT_INTERVAL", "200ms"),
            ("QR_BACKOFF", "50ms"),
            // Small images decode fast in the checks below.
            ("QR_SIZE", "128"),
            // Long enough for a reconcile batch on a loaded machine (a
            // repeating job that times out three times is dead-lettered).
            ("QR_JOB_TIMEOUT", "5s"),
            ("QR_RECONCILE_INTERVAL", "1s"),
            ("QR_RECONCILE_AFTER", "1s"),
            // A killed worker's half-written file is swept within seconds.
            ("STORAGE_TEMP_MAX_AGE", "6s"),
            ("STORAGE_SWEEP_INTERVAL", "250ms"),
        ],
    ]
    .concat();
    let mut workers = [start_qr_worker(&worker_vars), start_qr_worker(&worker_vars)];
    let addr = listening_addr(&gateway).await;

    let load = tokio::spawn(register_all(addr));
    // The chaos, at its cadence while the registrations arrive: Redis dies at
    // once and comes back from its AOF after `REDIS_DOWN_TICKS` ticks (longer
    // than the broker's connect timeout, so that registrations stop waiting
    // for it and leave their rows to the reconciler); one worker is SIGKILLed
    // and restarted on every tick, in turn.
    let mut worker_kills = 0;
    let mut tick = tokio::time::interval(KILL_EVERY);
    tick.tick().await;
    redis.kill().await;
    while !load.is_finished() || worker_kills < 4 {
        tick.tick().await;
        if !redis.is_running() && worker_kills + 1 >= REDIS_DOWN_TICKS {
            redis.restart().await;
        }
        let worker = &mut workers[worker_kills % 2];
        worker.kill().await;
        *worker = start_qr_worker(&worker_vars);
        worker_kills += 1;
    }
    let answers = load.await.expect("the load does not panic");
    let loaded = began.elapsed();

    let failed: Vec<_> = answers
        .iter()
        .filter(|a| a.status != 201 || a.id.is_none())
        .map(|a| (&a.document, a.status))
        .collect();
    assert!(
        failed.is_empty(),
        "every registration answers 201, also while Redis is down: {} did not: {:?}\n{}",
        failed.len(),
        &failed[..failed.len().min(20)],
        gateway.output()
    );
    assert_eq!(answers.len(), REGISTRATIONS);

    let mut conn = db.pool.acquire().await.expect("a connection");
    eventually_within("every registered person is ready", SETTLE, async || {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT qr_status FROM persons")
            .fetch_all(&mut *conn)
            .await
            .expect("read the statuses");
        let ready = rows.iter().filter(|(s,)| s == "ready").count();
        (rows.len() == REGISTRATIONS && ready == REGISTRATIONS).then_some(())
    })
    .await;
    let mut checks = Vec::new();
    for answer in &answers {
        let id = answer.id.expect("checked above");
        let person = persons::get(&mut conn, id)
            .await
            .expect("read the person")
            .expect("the person exists");
        assert_eq!(person.qr_status, QrStatus::Ready);
        assert_eq!(person.document, answer.document);
        checks.push(person);
    }
    drop(conn);
    // Decoding is CPU work: both cores, off the runtime's threads.
    let half = checks.len() / 2;
    let rest = checks.split_off(half);
    let decoders = [checks, rest].map(|people| {
        let dir = storage.path().to_owned();
        tokio::task::spawn_blocking(move || {
            for person in people {
                let png = std::fs::read(dir.join(&person.qr_path))
                    .unwrap_or_else(|e| panic!("{}: {e}", person.qr_path));
                assert_eq!(
                    qr_worker::testing::decode_qr_png(&png),
                    person.qr_content,
                    "{}",
                    person.qr_path
                );
            }
        })
    });
    for decoder in decoders {
        decoder.await.expect("every file decodes to its content");
    }

    let broker = Broker::connect(BrokerConfig::new(redis.url()).prefix(PREFIX))
        .await
        .expect("connect to the private redis");
    let queue = jobs::QR.open(&broker).expect("the QR queue");
    let admin = Admin::new(broker);
    let stats = admin.stats(&queue).await.expect("the QR queue's stats");
    let dead = admin
        .dead_letters(&queue, None, 10)
        .await
        .expect("read the dead letters");
    assert!(dead.items.is_empty(), "nothing dead-lettered: {dead:?}");

    eventually_within(
        "the workers swept every temporary file",
        SETTLE,
        async || temp_files(storage.path()).is_empty().then_some(()),
    )
    .await;

    let unqueued = gateway
        .json_lines()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("enqueueing the QR job failed"))
        })
        .count();
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!(
        "chaos: {REGISTRATIONS} registrations from {CLIENTS} clients in {:.1}s \
         (slowest {} ms; {unqueued} answered while Redis was down), {worker_kills} worker SIGKILLs \
         ({} jobs reclaimed), 1 Redis SIGKILL; all ready and swept after {:.1}s",
        loaded.as_secs_f64(),
        slowest.as_millis(),
        stats.reclaimed,
        began.elapsed().as_secs_f64()
    );
    for worker in workers {
        let (_, output) = worker.terminate().await;
        assert!(!output.contains("panicked"), "{output}");
    }
    let (status, output) = gateway.terminate().await;
    assert!(
        status.success(),
        "the gateway exits cleanly: {status}\n{output}"
    );
    redis.kill().await;
    db.cleanup().await;
}
