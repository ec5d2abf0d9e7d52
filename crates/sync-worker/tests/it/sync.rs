//! A whole sync against the Wispro simulator: exact counts over a generated
//! data set with users that already exist by Wispro id, by their number bare,
//! dotted with its letter or with a leading zero, twice (ambiguous), and a
//! different person whose number ends in a customer's digits; passwords, a
//! second run, a token
//! Wispro refuses in the body of an HTTP 200, and a run resumed after its
//! worker was stopped mid-run, or its `sync-worker` process killed with SIGKILL.

use std::collections::HashSet;
use std::time::Duration;

use queue_core::testing::eventually;
use service::testing::process::Process;
use store::sync_runs::{self, SyncStatus};
use store::users;
use upstream_sim::wispro::{Cedula, Client, Kind, dotted};

use crate::world::{
    CLIENTS, PER_PAGE, SyncWorld, World, errors_and_skips, expect_every_customer_once,
};

fn digits(c: &Client) -> String {
    cedula(c).number.to_string()
}

fn cedula(c: &Client) -> Cedula {
    c.cedula.expect("a clean client has a cédula")
}

/// Seeds users for some clean clients and says what the run must count.
struct Expected {
    created: i32,
    updated: i32,
    skipped: i32,
    errors: i32,
    seeded_users: Vec<i64>,
}

async fn seed(world: &World, clients: &[Client]) -> Expected {
    let referenced: HashSet<i64> = clients.iter().filter_map(|c| c.duplicate_of).collect();
    let mut clean = clients
        .iter()
        .filter(|c| c.kind.is_clean() && !referenced.contains(&c.public_id));
    let mut next = || clean.next().expect("enough clean clients");
    let mut seeded = Vec::new();
    // By Wispro id; by the number dotted with its letter, with a leading
    // zero, bare (which a V- or E- number matches).
    let linked = next();
    seeded.push(world.seed_user("V-1", Some(&linked.id)).await);
    let forms: [fn(Cedula) -> String; 3] = [
        |id| format!("{:?}-{}", id.nationality, dotted(id.number)),
        |id| format!("0{}", id.number),
        |id| id.number.to_string(),
    ];
    for form in forms {
        seeded.push(world.seed_user(&form(cedula(next())), None).await);
    }
    // A different person whose number ends in a customer's digits: left
    // alone, and the customer gets a user of its own.
    let suffix = next();
    seeded.push(world.seed_user(&format!("9{}", digits(suffix)), None).await);
    // Two users with one customer's number: ambiguous, neither updated.
    let ambiguous = next();
    seeded.push(world.seed_user(&digits(ambiguous), None).await);
    seeded.push(world.seed_user(&cedula(ambiguous).to_string(), None).await);

    let (errors, skipped) = errors_and_skips(clients);
    // Plus the client whose number two seeded users have: ambiguous, skipped.
    let skipped = skipped + 1;
    let updated = 4;
    Expected {
        created: CLIENTS as i32 - errors - skipped - updated,
        updated,
        skipped,
        errors,
        seeded_users: seeded,
    }
}

#[tokio::test]
async fn a_sync_counts_exactly_creates_verifiable_users_and_never_touches_a_password() {
    let world = World::new().await;
    let clients = world.sim.wispro().clients();
    let expected = seed(&world, &clients).await;
    let worker = world
        .spawn(world.config(upstream_sim::wispro::DEFAULT_TOKEN))
        .await;

    let id = world.start_run().await;
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Completed, "{:?}", run.failure);
    assert_eq!(
        (run.created, run.updated, run.skipped, run.errors),
        (
            expected.created,
            expected.updated,
            expected.skipped,
            expected.errors
        ),
        "{:#?}",
        run.error_samples.0
    );
    assert_eq!((run.pages_done, run.total_pages), (5, Some(5)));
    assert!(
        run.error_samples
            .0
            .iter()
            .any(|s| s.contains("ambiguous: users"))
    );
    assert_eq!(
        world.user_count().await,
        expected.seeded_users.len() as i64 + i64::from(expected.created)
    );
    // Seeded users keep their password; a created one's is bcrypt of its digits.
    let mut conn = world.conn().await;
    for id in &expected.seeded_users {
        let u = users::get(&mut conn, *id).await.expect("get").expect("row");
        assert!(u.password.starts_with("$2y$10$seeded"), "{}", u.password);
    }
    let created = clients
        .iter()
        .rev()
        // Not the first of a duplicated number: its twin may have been handled first.
        .find(|c| {
            c.kind == Kind::Digits && !clients.iter().any(|d| d.duplicate_of == Some(c.public_id))
        })
        .expect("a bare-digits client");
    let user = users::by_wispro_id(&mut conn, &created.id)
        .await
        .expect("q")
        .expect("created");
    assert!(user.password.starts_with("$2y$04$"), "{}", user.password);
    assert!(bcrypt::verify(digits(created), &user.password).expect("verify"));
    assert_eq!(user.zone.as_deref(), Some(created.zone.as_str()));
    drop(conn);

    // A second run finds everyone by Wispro id: nothing is created twice.
    let again = world.start_run().await;
    let second = world.run_until_done(again).await;
    assert_eq!(second.created, 0, "{:#?}", second.error_samples.0);
    assert_eq!(second.errors, expected.errors);
    assert_eq!(
        world.user_count().await,
        expected.seeded_users.len() as i64 + i64::from(expected.created)
    );
    worker.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn a_token_refused_in_the_body_of_an_http_200_fails_the_run_with_the_reason() {
    let world = World::new().await;
    let worker = world.spawn(world.config("not-the-token")).await;
    let id = world.start_run().await;
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Failed);
    let failure = run.failure.expect("a reason");
    assert!(failure.contains("status 401"), "{failure}");
    assert_eq!(world.user_count().await, 0);
    assert_eq!(
        world.sim.wispro().stats().requests,
        1,
        "no retry of a refusal"
    );
    worker.stop().await;
    world.finish().await;
}

/// A world whose pages take 300 ms: a run is still under way when its first
/// worker goes.
async fn slow_world() -> World {
    let world = World::new().await;
    world.sim.wispro().set_latency(Duration::from_millis(300));
    world
}

/// Waits until run `id`, whose first worker went mid-run, ends: it completed
/// its five pages, and a page redone after the stop counts its customers as
/// updated, so together the counts still cover every customer once and no
/// user exists twice. That number of customers.
async fn resumed_with_no_duplicate(world: &World, id: i64) -> i32 {
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Completed, "{:?}", run.failure);
    assert_eq!(run.pages_done, 5);
    let expected = expect_every_customer_once(world);
    assert_eq!(run.created + run.updated, expected, "{run:?}");
    assert_eq!(world.user_count().await, i64::from(expected));
    expected
}

#[tokio::test]
async fn a_run_whose_worker_stopped_mid_run_resumes_after_its_last_page_with_no_duplicate() {
    // The first worker is stopped while the run is under way, with no grace
    // period, so its job is abandoned as a killed worker's would be.
    let world = slow_world().await;
    let mut config = world.config(upstream_sim::wispro::DEFAULT_TOKEN);
    config.worker.grace_period = Duration::ZERO;
    let first = world.spawn(config.clone()).await;
    let id = world.start_run().await;
    world
        .run_until(id, "two pages are done", |run| run.pages_done >= 2)
        .await;
    first.stop().await;
    world.sim.wispro().set_latency(Duration::ZERO);
    let second = world.spawn(config).await;

    resumed_with_no_duplicate(&world, id).await;
    let pages: Vec<i32> = sqlx::query_scalar("SELECT pages_done FROM sync_runs WHERE id = $1")
        .bind(id)
        .fetch_all(&world.db.pool)
        .await
        .expect("q");
    assert_eq!(pages, [5]);
    second.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn a_run_whose_worker_process_is_killed_mid_run_resumes_in_another_with_no_duplicate() {
    let world = slow_world().await;
    let redis_url = queue_core::testing::redis_url();
    let sim_url = world.sim.url();
    let vars = [
        ("REDIS_URL", redis_url.as_str()),
        ("RSQ_PREFIX", world.redis.prefix.as_str()),
        ("DATABASE_URL", world.db.url.as_str()),
        ("HEALTH_ADDR", "127.0.0.1:0"),
        ("LOG_FORMAT", "json"),
        ("WISPRO_URL", sim_url.as_str()),
        ("WISPRO_TOKEN", upstream_sim::wispro::DEFAULT_TOKEN),
        ("SYNC_BCRYPT_COST", "4"),
    ];
    let mut killed = Process::start(
        "sync-worker",
        std::path::Path::new(env!("CARGO_BIN_EXE_sync-worker")),
        &vars,
    );
    let id = world.start_run().await;
    world
        .run_until(id, "the process has finished two pages", |run| {
            run.pages_done >= 2
        })
        .await;
    killed.kill().await;
    assert!(!killed.panicked(), "{}", killed.output());

    // The kill left the run half done, its job pending under a dead consumer.
    let left = world.run(id).await;
    assert_eq!(left.status, SyncStatus::Running, "{:?}", left.failure);
    assert!(left.pages_done < 5, "killed before the end");
    let stats = world.stats().await;
    assert!(stats.active >= 1, "{stats:?}");

    // Another replica reclaims the job after the visibility timeout and
    // resumes after the last finished page.
    world.sim.wispro().set_latency(Duration::ZERO);
    let requests_before = world.sim.wispro().stats().requests;
    let survivor = world
        .spawn(world.config(upstream_sim::wispro::DEFAULT_TOKEN))
        .await;
    let expected = resumed_with_no_duplicate(&world, id).await;
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT id_wispro) FROM users")
        .fetch_one(&world.db.pool)
        .await
        .expect("q");
    assert_eq!(distinct, i64::from(expected), "no Wispro client twice");
    world.assert_every_customer_has_its_user().await;
    // Resumed, not restarted: the survivor read at most the unfinished pages
    // (plus the page that tells the total).
    let resumed_pages = world.sim.wispro().stats().requests - requests_before;
    assert!(
        resumed_pages <= u64::try_from(6 - left.pages_done).expect("pages"),
        "the survivor read {resumed_pages} pages after {} were done",
        left.pages_done
    );
    survivor.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn a_wispro_that_hangs_past_the_timeout_or_fails_a_page_is_retried_and_the_run_completes() {
    let world = World::new().await;
    let mut config = world.config(upstream_sim::wispro::DEFAULT_TOKEN);
    config.wispro.timeout = Duration::from_millis(300);
    // Timeouts and two failed pages; more job attempts than the page budget
    // needs, with room for a loaded machine.
    config.worker.max_attempts = 8;
    world.sim.wispro().set_hang(true);
    world.sim.wispro().fail_page(3, Some(2));
    let worker = world.spawn(config).await;
    let id = world.start_run().await;

    // The first calls hang past the client's timeout; then Wispro answers,
    // except page 3, which fails twice with a server error first.
    eventually("a second call after a timeout", async || {
        (world.sim.wispro().stats().requests >= 2).then_some(())
    })
    .await;
    world.sim.wispro().set_hang(false);
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Completed, "{:?}", run.failure);
    assert_eq!(run.pages_done, 5);
    let expected = expect_every_customer_once(&world);
    assert_eq!(run.created + run.updated, expected, "{run:?}");
    assert_eq!(world.user_count().await, i64::from(expected));
    // Page 3 was read again within the run, after its two failures.
    assert_eq!(world.sim.wispro().stats().page_requests[&3], 3);
    worker.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn a_run_whose_job_was_lost_is_picked_up_by_the_reconciler() {
    let world = World::new().await;
    let worker = world
        .spawn(world.config(upstream_sim::wispro::DEFAULT_TOKEN))
        .await;
    // Stored, never enqueued: a gateway killed between its commit and the enqueue.
    let id = {
        let mut conn = world.conn().await;
        sync_runs::start(&mut conn, "admin", PER_PAGE)
            .await
            .expect("a run")
            .id
    };
    let run = world.run_until_done(id).await;
    assert_eq!(run.status, SyncStatus::Completed, "{:?}", run.failure);
    assert_eq!(run.pages_done, 5);
    worker.stop().await;
    world.finish().await;
}
