//! The world of a sync test: a key prefix in Redis, a database, the Wispro
//! simulator on port 0, and the worker's configuration for them.

use std::collections::HashSet;
use std::time::Duration;

use queue_core::testing::{TestRedis, eventually};
use service::testing::Running;
use store::sync_runs::{self, SyncRun, SyncStatus};
use store::testing::TestDb;
use store::users::{self, User};
use sync_worker::{Config, WisproConfig};
use upstream_sim::wispro::{Client, Kind};
use upstream_sim::{Sim, SimConfig};

pub const CLIENTS: usize = 450;
pub const SEED: u64 = 7;
pub const PER_PAGE: i32 = 100;
/// The hash of every seeded user: a sync that touched a password would show.
pub const SEEDED_PASSWORD: &str = "$2y$10$seededpasswordhashseededpasswordhashseededpasswor";

pub struct World {
    pub redis: TestRedis,
    pub queue: queue_core::Queue,
    pub db: TestDb,
    pub sim: Sim,
}

impl World {
    pub async fn new() -> Self {
        let mut sim = SimConfig::default();
        sim.wispro.clients = CLIENTS;
        sim.wispro.seed = SEED;
        let redis = TestRedis::new().await;
        Self {
            queue: redis.queue(jobs::WISPRO_SYNC.name),
            redis,
            db: TestDb::new().await,
            sim: Sim::start(sim).await.expect("the simulator starts"),
        }
    }

    pub fn config(&self, token: &str) -> Config {
        Config {
            base: service::testing::base_config(&self.redis.prefix, &self.db.url),
            worker: service::testing::fast_worker_config(&jobs::WISPRO_SYNC),
            wispro: WisproConfig {
                url: self.sim.url(),
                token: service::Secret::new(token),
                timeout: Duration::from_secs(5),
            },
            // Cheap hashes: the format and the check are the same at any cost.
            bcrypt_cost: 4,
            hash_threads: 4.try_into().expect("nonzero"),
            progress_every: 2,
            // Three tries of a page, the retries within milliseconds.
            page_attempts: 3.try_into().expect("nonzero"),
            page_backoff: Duration::from_millis(10),
            max_passes: 3.try_into().expect("nonzero"),
            reconcile: service::config::ReconcileConfig {
                interval: Duration::from_secs(1),
                after: Duration::from_millis(500),
                batch: 1,
            },
        }
    }

    pub async fn spawn(&self, config: Config) -> Running {
        Running::spawn(sync_worker::start(config).await.expect("the worker starts"))
    }

    /// Starts a run as the gateway does and enqueues its job.
    pub async fn start_run(&self) -> i64 {
        let mut conn = self.db.pool.acquire().await.expect("conn");
        let run = sync_runs::start(&mut conn, "admin", PER_PAGE)
            .await
            .expect("a run");
        let job = jobs::new_job(&jobs::v1::WisproSyncRun {
            run_id: run.id,
            requested_by: "admin".into(),
        });
        self.redis
            .producer
            .enqueue(&self.queue, job)
            .await
            .expect("enqueue");
        run.id
    }

    pub async fn run_until_done(&self, id: i64) -> SyncRun {
        eventually(&format!("sync run {id} ends"), async || {
            let mut conn = self.db.pool.acquire().await.ok()?;
            let run = sync_runs::get(&mut conn, id).await.ok()??;
            matches!(run.status, SyncStatus::Completed | SyncStatus::Failed).then_some(run)
        })
        .await
    }

    pub async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    /// A user as a legacy system leaves it: written by plain SQL, with its
    /// number in whatever form it was typed, linked to no Wispro client unless
    /// `id_wispro` says so, and a password no sync may touch.
    pub async fn seed_user(&self, id_number: &str, id_wispro: Option<&str>) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO users (name, id_number, id_wispro, password)
             VALUES ('Seeded User', $1, $2, $3) RETURNING id",
        )
        .bind(id_number)
        .bind(id_wispro)
        .bind(SEEDED_PASSWORD)
        .fetch_one(&self.db.pool)
        .await
        .expect("seed a user")
    }

    pub async fn user(&self, id: i64) -> User {
        let mut conn = self.db.pool.acquire().await.expect("conn");
        users::get(&mut conn, id)
            .await
            .expect("get")
            .expect("the user")
    }

    pub async fn run(&self, id: i64) -> SyncRun {
        let mut conn = self.db.pool.acquire().await.expect("conn");
        sync_runs::get(&mut conn, id)
            .await
            .expect("get")
            .expect("the run")
    }

    /// Fails the test unless every client now served that a run must write
    /// (a name, a valid email, a usable number not held by an earlier client)
    /// has exactly one user, linked to it.
    pub async fn assert_every_customer_has_its_user(&self) {
        let linked: Vec<String> =
            sqlx::query_scalar("SELECT id_wispro FROM users WHERE id_wispro IS NOT NULL")
                .fetch_all(&self.db.pool)
                .await
                .expect("linked users");
        let linked: HashSet<String> = linked.into_iter().collect();
        let clients = self.sim.wispro().clients();
        // Of two clients with one number, either may be handled first.
        let twin_linked = |c: &Client| {
            clients
                .iter()
                .any(|d| d.duplicate_of == Some(c.public_id) && linked.contains(&d.id))
        };
        let missing: Vec<i64> = clients
            .iter()
            .filter(|c| c.kind.is_clean() && !linked.contains(&c.id) && !twin_linked(c))
            .map(|c| c.public_id)
            .collect();
        assert!(missing.is_empty(), "customers never synced: {missing:?}");
    }

    pub async fn finish(self) {
        self.sim.stop().await;
        self.redis.finish().await;
        self.db.cleanup().await;
    }
}

/// How many of `clients` a run counts as errors (a missing name, a broken
/// email) and as skipped (no usable number, or a number another client holds:
/// its user is linked to the first one handled).
pub fn errors_and_skips(clients: &[Client]) -> (i32, i32) {
    let count = |f: fn(Kind) -> bool| clients.iter().filter(|c| f(c.kind)).count() as i32;
    (
        count(|k| matches!(k, Kind::MissingName | Kind::InvalidEmail)),
        count(|k| {
            matches!(
                k,
                Kind::NullId | Kind::EmptyId | Kind::GarbageId | Kind::DuplicateId
            )
        }),
    )
}

/// What a run of the simulator's data set must end with, whatever was redone:
/// every customer with a usable number exactly once, as one user.
pub fn expect_every_customer_once(world: &World) -> i32 {
    let clients = world.sim.wispro().clients();
    let (errors, skipped) = errors_and_skips(&clients);
    clients.len() as i32 - errors - skipped
}
