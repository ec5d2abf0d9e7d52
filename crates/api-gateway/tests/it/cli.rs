//! The real binary, as scripts and init containers run it: `migrate` needs only
//! `DATABASE_URL` (and creates the queues' consumer groups when `REDIS_URL` is
//! set); a bad value exits 64 naming the variable, before any I/O.

use std::collections::HashMap;
use std::process::Output;

use queue_core::testing::{PATIENCE, TestRedis, redis_url};
use queue_core::{NewJob, WorkerConfig};
use store::testing::TestDb;
use tokio::process::Command;

use crate::helpers::{ADMIN_TOKEN, USER_TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_api-gateway");

/// Runs the binary with exactly `vars` as its environment.
async fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .kill_on_drop(true);
    tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .expect("the binary exits in time")
        .expect("the binary runs")
}

async fn table_exists(db: &TestDb, table: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("public.{table}"))
        .fetch_one(&db.pool)
        .await
        .expect("query the catalogue")
}

#[tokio::test]
async fn migrate_needs_only_the_database_url_and_applies_the_migrations() {
    let db = TestDb::new().await;
    // A TestDb comes migrated: empty it so the binary has all the work to do.
    sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .execute(&db.pool)
        .await
        .expect("empty the schema");
    assert!(!table_exists(&db, "_sqlx_migrations").await);

    let out = run(&["migrate"], &[("DATABASE_URL", &db.url)]).await;
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table_exists(&db, "_sqlx_migrations").await);
    assert!(table_exists(&db, "persons").await);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db.pool)
        .await
        .expect("count migrations");
    assert!(applied >= 1, "{applied} migrations recorded");
    db.cleanup().await;
}

#[tokio::test]
async fn migrate_with_a_redis_url_creates_every_catalogue_queues_group_once_and_again() {
    let db = TestDb::new().await;
    let env = TestRedis::new().await;
    let queues: Vec<_> = jobs::CATALOGUE
        .iter()
        .map(|spec| match spec.priority_lanes {
            true => env.priority_queue(spec.name),
            false => env.queue(spec.name),
        })
        .collect();
    // A job enqueued before the groups exist is waiting work all the same.
    env.enqueue(&queues[0], NewJob::new("qr.generate", "early"))
        .await;
    let url = redis_url();
    let vars = [
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", url.as_str()),
        ("RSQ_PREFIX", env.prefix.as_str()),
    ];
    for round in ["first", "again"] {
        let out = run(&["migrate"], &vars).await;
        assert!(
            out.status.success(),
            "{round}: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let group = WorkerConfig::default().group;
    for q in &queues {
        let lanes: &[Option<&str>] = match q.name() {
            "payment-checks" => &[Some("high"), None, Some("low")],
            _ => &[None],
        };
        for lane in lanes {
            let groups: Vec<HashMap<String, redis::Value>> = env
                .cmd(
                    redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(q.keys().stream(*lane)),
                )
                .await;
            let names: Vec<String> = groups
                .iter()
                .map(|g| redis::from_redis_value(g["name"].clone()).expect("a name"))
                .collect();
            assert_eq!(names, [group.as_str()], "{} {lane:?}", q.name());
        }
        let stats = env.stats(q).await;
        let expected = if q.name() == "qr" { 1 } else { 0 };
        assert_eq!(stats.lag, Some(expected), "{}: {stats:?}", q.name());
    }
    let listed = env.admin.queues().await.expect("the registry");
    assert_eq!(listed.len(), jobs::CATALOGUE.len(), "every queue is listed");
    env.finish().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_bad_value_exits_64_naming_the_variable() {
    let tokens = [
        ("API_ADMIN_TOKEN", ADMIN_TOKEN),
        ("API_USER_TOKEN", USER_TOKEN),
    ];
    let cases = [
        (
            vec!["migrate"],
            vec![("DATABASE_URL", "mysql://db/app")],
            "DATABASE_URL",
        ),
        (
            vec!["migrate"],
            vec![("REDIS_URL", "http://redis")],
            "REDIS_URL",
        ),
        (
            vec![],
            vec![("API_USER_TOKEN", USER_TOKEN)],
            "API_ADMIN_TOKEN",
        ),
        (
            vec![],
            [&tokens[..], &[("API_REQUEST_TIMEOUT", "30")]].concat(),
            "API_REQUEST_TIMEOUT",
        ),
        (
            vec![],
            [&tokens[..], &[("QR_FORMAT", "gif")]].concat(),
            "QR_FORMAT",
        ),
        (
            vec![],
            [&tokens[..], &[("API_ENQUEUE_TIMEOUT", "0s")]].concat(),
            "API_ENQUEUE_TIMEOUT",
        ),
        (
            vec!["serve-please"],
            tokens.to_vec(),
            "usage: api-gateway [migrate | healthcheck [IP:PORT[/PATH]]]",
        ),
    ];
    for (args, vars, named) in cases {
        let out = run(&args, &vars).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?} {vars:?}: {stderr}");
        assert!(
            stderr.starts_with("api-gateway: ") && stderr.contains(named),
            "{args:?} {vars:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

#[tokio::test]
async fn healthcheck_exits_0_on_a_ready_gateway_and_1_on_a_closed_port() {
    let app = crate::helpers::TestApp::spawn().await;
    let ready = format!("{}/readyz", app.health_addr);
    let out = run(&["healthcheck", &ready], &[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // From HEALTH_ADDR, as the image's HEALTHCHECK runs it.
    let addr = app.health_addr.to_string();
    let out = run(&["healthcheck"], &[("HEALTH_ADDR", &addr)]).await;
    assert_eq!(out.status.code(), Some(0));
    app.cleanup().await;

    // The port is closed once the gateway stopped.
    let out = run(&["healthcheck", &ready], &[]).await;
    assert_eq!(out.status.code(), Some(1), "a stopped gateway is unhealthy");
}
