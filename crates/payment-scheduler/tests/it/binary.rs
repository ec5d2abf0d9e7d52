//! The real `payment-scheduler` binary: configuration is checked before
//! anything else (a bad value exits 64 naming it), and a process killed between
//! a check's status update and its booking loses nothing and books once.

use std::process::{Command, Stdio};

use queue_core::testing::eventually;
use service::testing::TableLock;
use service::testing::process::assert_config_refused;
use sqlx::{Connection, PgConnection};
use store::payments::PaymentStatus;

use crate::support::{PaymentWorld, TestApp};

#[test]
fn a_bad_value_exits_64_with_one_line_naming_the_variable_and_the_rule() {
    for (var, value, rule) in [
        ("BANK_URL", "ftp://bank", "http://"),
        ("BANK_TIMEOUT", "2m", "less than PAYMENT_CHECKS_JOB_TIMEOUT"),
        ("PAYMENT_CHECK_DELAY_PENDING", "2", "duration"),
        ("PAYMENT_MAX_CHECKS", "0", "between 1 and 10000"),
        ("PAYMENT_CLEANUP_AT", "3am", "03:00"),
        ("PAYMENT_CHECKS_RATE_LIMIT", "often", "10/1s"),
        // Retention: the queue's own variable and the default of every queue.
        ("PAYMENT_CHECKS_RETAIN_COMPLETED", "0", "at least 1"),
        ("RETAIN_DEAD_LETTERS_MAX_AGE", "30", "duration"),
        ("REDIS_URL", "http://:secretpw@h", "redis://"),
    ] {
        let program = env!("CARGO_BIN_EXE_payment-scheduler");
        assert_config_refused(program, &[(var, value)], var, rule, "secretpw");
    }
}

#[test]
fn bnb_without_a_credential_exits_64_naming_it_and_never_prints_the_other() {
    let program = env!("CARGO_BIN_EXE_payment-scheduler");
    let bnb = [
        ("BANK_PROVIDER", "bnb"),
        ("BNB_API_URL", "http://test.bnb.com.bo"),
    ];
    let without_authorization = [bnb.as_slice(), &[("BNB_ACCOUNT_ID", "acct-secretpw")]].concat();
    assert_config_refused(
        program,
        &without_authorization,
        "BNB_AUTHORIZATION_ID",
        "required with BANK_PROVIDER=bnb",
        "secretpw",
    );
    let without_account = [bnb.as_slice(), &[("BNB_AUTHORIZATION_ID", "auth-secretpw")]].concat();
    assert_config_refused(
        program,
        &without_account,
        "BNB_ACCOUNT_ID",
        "required with BANK_PROVIDER=bnb",
        "secretpw",
    );
    assert_config_refused(
        program,
        &[("BANK_PROVIDER", "bisa")],
        "BANK_PROVIDER",
        "sim or bnb",
        "secretpw",
    );
}

/// Backends of the test's database, other than the asking one, in `state` or
/// waiting for a lock on `account_movements`.
async fn backends(conn: &mut PgConnection, lock_waiters_only: bool) -> i64 {
    let sql = if lock_waiters_only {
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
           AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
           AND query ILIKE '%account_movements%'"
    } else {
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
           AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')
           AND query ILIKE '%account_movements%'"
    };
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .expect("pg_stat_activity")
}

#[tokio::test]
async fn a_scheduler_killed_between_the_status_update_and_the_booking_loses_nothing_and_books_once()
{
    let app = TestApp::new().await;
    let p = app.create("completed").await;

    // Hold the booking back: the check's transaction updates the status, then
    // waits on this lock at its INSERT into account_movements.
    let lock = TableLock::new(&app.db.url, "account_movements").await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_payment-scheduler"))
        .env_clear()
        .env("REDIS_URL", queue_core::testing::redis_url())
        .env("RSQ_PREFIX", &app.redis.prefix)
        .env("DATABASE_URL", &app.db.url)
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .env("BANK_URL", app.sim.url())
        .env("PAYMENT_CHECK_DELAY_PENDING", "20ms")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start payment-scheduler");

    let mut probe = PgConnection::connect(&app.db.url).await.expect("connect");
    eventually("the check waits to book the movement", async || {
        (backends(&mut probe, true).await == 1).then_some(())
    })
    .await;
    // Its status update is not visible: it is in the same, open transaction.
    assert_eq!(app.payment(p.id).await.status, PaymentStatus::Pending);
    assert_eq!(app.sim.bank().status_reads(&p.qr_id), 1);

    child.kill().expect("SIGKILL the scheduler");
    child.wait().expect("reap it");
    lock.release().await;
    eventually("the killed scheduler's transaction is gone", async || {
        (backends(&mut probe, false).await == 0).then_some(())
    })
    .await;
    // Rolled back as a whole: no status without its movement.
    let after = app.payment(p.id).await;
    assert_eq!(
        (after.status, after.checks_made),
        (PaymentStatus::Pending, 0)
    );
    assert!(app.movements(p.id).await.is_empty());
    assert!(app.history(p.id).await.is_empty());

    // Another scheduler reclaims the check and does it again, once.
    let worker = app.spawn(app.config()).await;
    let done = app.settled(p.id).await;
    assert_eq!(
        (done.status, done.checks_made),
        (PaymentStatus::Completed, 1)
    );
    assert_eq!(app.movements(p.id).await.len(), 1);
    assert_eq!(app.sim.bank().status_reads(&p.qr_id), 2);
    worker.stop().await;
    drop(probe);
    app.finish().await;
}
