//! The world of a sync test (`service::testing`'s world with the Wispro
//! simulator on port 0), the worker's configuration for it, and users and runs
//! stored the way a legacy system and the gateway store them.

use std::collections::HashSet;
use std::time::Duration;

use queue_core::testing::eventually;
use service::testing::{Running, TestWorld};
use store::sync_runs::{self, SyncRun, SyncStatus};
use store::users::{self, User};
use sync_worker::{Config, WisproConfig};
use upstream_sim::wispro::{Client, Kind};
use upstream_sim::{Sim, SimConfig};

pub const CLIENTS: usize = 450;
pub const SEED: u64 = 7;
pub const PER_PAGE: i32 = 100;
/// The hash of every seeded user: a sync that touched a password would show.
pub const SEEDED_PASSWORD: &str = "$2y$10$seededpasswordhashseededpasswordhashseededpasswor";

/// One sync test's world, its simulator serving Wispro's [`CLIENTS`] clients.
pub type World = TestWorld<Sim>;

/// What the sync tests add to their world.
pub trait SyncWorld: Sized {
    /// A world on the `wispro-sync` queue and a simulator of [`CLIENTS`] clients.
    async fn new() -> Self;

    /// The config `main` would build for this world, with `token` for Wispro.
    fn config(&self, token: &str) -> Config;

    /// Starts a worker with `config`.
    async fn spawn(&self, config: Config) -> Running;

    /// Starts a run as the gateway does and enqueues its job.
    async fn start_run(&self) -> i64;

    /// Polls the run until `done` holds.
    async fn run_until(&self, id: i64, what: &str, done: impl Fn(&SyncRun) -> bool) -> SyncRun;

    /// Polls the run until it completed or failed.
    async fn run_until_done(&self, id: i64) -> SyncRun;

    async fn user_count(&self) -> i64;

    /// A user as a legacy system leaves it: written by plain SQL, with its
    /// number in whatever form it was typed, linked to no Wispro client unless
    /// `id_wispro` says so, and a password no sync may touch.
    async fn seed_user(&self, id_number: &str, id_wispro: Option<&str>) -> i64;

    async fn user(&self, id: i64) -> User;

    async fn run(&self, id: i64) -> SyncRun;

    /// Fails the test unless every client now served that a run must write
    /// (a name, a valid email, a usable number not held by an earlier client)
    /// has exactly one user, linked to it.
    async fn assert_every_customer_has_its_user(&self);
}

impl SyncWorld for World {
    async fn new() -> Self {
        let mut sim = SimConfig::default();
        sim.wispro.clients = CLIENTS;
        sim.wispro.seed = SEED;
        let sim = Sim::start(sim).await.expect("the simulator starts");
        TestWorld::for_queue_with_sim(&jobs::WISPRO_SYNC, sim).await
    }

    fn config(&self, token: &str) -> Config {
        Config {
            base: self.base_config(),
            worker: self.worker_config(),
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

    async fn spawn(&self, config: Config) -> Running {
        Running::spawn(sync_worker::start(config).await.expect("the worker starts"))
    }

    async fn start_run(&self) -> i64 {
        let run = sync_runs::start(&mut *self.conn().await, "admin", PER_PAGE)
            .await
            .expect("a run");
        let job = jobs::new_job(&jobs::v1::WisproSyncRun {
            run_id: run.id,
            requested_by: "admin".into(),
        });
        self.enqueue_job(job).await;
        run.id
    }

    async fn run_until(&self, id: i64, what: &str, done: impl Fn(&SyncRun) -> bool) -> SyncRun {
        eventually(what, async || {
            let mut conn = self.db.pool.acquire().await.ok()?;
            let run = sync_runs::get(&mut conn, id).await.ok()??;
            done(&run).then_some(run)
        })
        .await
    }

    async fn run_until_done(&self, id: i64) -> SyncRun {
        self.run_until(id, &format!("sync run {id} ends"), |run| {
            matches!(run.status, SyncStatus::Completed | SyncStatus::Failed)
        })
        .await
    }

    async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    async fn seed_user(&self, id_number: &str, id_wispro: Option<&str>) -> i64 {
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

    async fn user(&self, id: i64) -> User {
        users::get(&mut *self.conn().await, id)
            .await
            .expect("get")
            .expect("the user")
    }

    async fn run(&self, id: i64) -> SyncRun {
        sync_runs::get(&mut *self.conn().await, id)
            .await
            .expect("get")
            .expect("the run")
    }

    async fn assert_every_customer_has_its_user(&self) {
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
