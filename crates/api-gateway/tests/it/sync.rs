//! The Wispro sync end to end: HTTP -> PostgreSQL `sync_runs` + the
//! `wispro-sync` queue. One run is active at a time; starting another while it
//! is queued or running is a 409 naming it, and enqueues nothing.

use jobs::v1::WisproSyncRun;
use serde_json::Value;
use store::sync_runs;

use crate::helpers::{ADMIN_TOKEN, TestApp, USER_TOKEN};

const START: &str = "/api/users/sync-wispro-all";

async fn send(app: &TestApp, post: bool, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = if post {
        app.client.post(app.url(path))
    } else {
        app.client.get(app.url(path))
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

/// Starts a run as the admin: 202, its id, and `Location` naming it.
async fn start_run(app: &TestApp) -> i64 {
    let res = app.admin_post(START).await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = res.json().await.expect("json");
    let run_id = body["run_id"].as_i64().expect("run_id");
    assert_eq!(body["status"], "queued", "{body}");
    assert_eq!(location, format!("/api/sync-runs/{run_id}"));
    run_id
}

#[tokio::test]
async fn an_admin_start_answers_202_and_one_job_names_the_queued_run() {
    let app = TestApp::spawn().await;
    let run_id = start_run(&app).await;

    let jobs = app.waiting_jobs::<WisproSyncRun>().await;
    assert_eq!(jobs.len(), 1, "exactly one sync job waits");
    let (envelope, payload) = &jobs[0];
    assert_eq!(envelope.kind, "wispro.sync");
    assert_eq!(payload.run_id, run_id);
    assert_eq!(payload.requested_by, "admin");
    assert_eq!(envelope.unique_key, format!("wispro-sync:run:{run_id}"));

    let res = app
        .get(ADMIN_TOKEN, &format!("/api/sync-runs/{run_id}"))
        .await;
    assert_eq!(res.status(), 200);
    let run: Value = res.json().await.expect("json");
    assert_eq!(run["id"], run_id);
    assert_eq!(run["status"], "queued");
    assert_eq!(run["requested_by"], "admin");
    assert_eq!(run["per_page"], 100, "WISPRO_PER_PAGE's default");
    for zero in ["pages_done", "created", "updated", "skipped", "errors"] {
        assert_eq!(run[zero], 0, "{zero}: {run}");
    }
    assert_eq!(run["error_samples"], serde_json::json!([]));
    for null in ["total_pages", "failure", "started_at", "finished_at"] {
        assert!(run[null].is_null(), "{null}: {run}");
    }
    assert!(run["created_at"].is_string() && run["updated_at"].is_string());
    app.cleanup().await;
}

#[tokio::test]
async fn a_second_start_while_one_is_active_is_a_409_naming_it_and_enqueues_nothing() {
    let app = TestApp::spawn_with(|c| c.wispro_per_page = 25).await;
    let run_id = start_run(&app).await;
    for _ in 0..2 {
        let res = app.admin_post(START).await;
        assert_eq!(res.status(), 409);
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], "conflict", "{body}");
        assert_eq!(body["run_id"], run_id, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
    assert_eq!(
        app.waiting_jobs::<WisproSyncRun>().await.len(),
        1,
        "no second job"
    );
    // Still active while running.
    let mut conn = app.db().pool.acquire().await.expect("conn");
    assert!(
        sync_runs::mark_running(&mut conn, run_id, 4)
            .await
            .expect("running")
    );
    drop(conn);
    let res = app.admin_post(START).await;
    assert_eq!(res.status(), 409);
    let run: Value = app
        .get(ADMIN_TOKEN, &format!("/api/sync-runs/{run_id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(run["status"], "running");
    assert_eq!(run["total_pages"], 4);
    assert_eq!(run["per_page"], 25, "WISPRO_PER_PAGE");
    assert!(run["started_at"].is_string(), "{run}");
    app.cleanup().await;
}

#[tokio::test]
async fn once_the_run_is_finished_a_new_start_begins_a_new_run() {
    let app = TestApp::spawn().await;
    let first = start_run(&app).await;
    let mut conn = app.db().pool.acquire().await.expect("conn");
    assert!(
        sync_runs::finish(&mut conn, first, None)
            .await
            .expect("finish")
    );
    drop(conn);
    let second = start_run(&app).await;
    assert_ne!(second, first);
    let finished: Value = app
        .get(ADMIN_TOKEN, &format!("/api/sync-runs/{first}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(finished["status"], "completed");
    assert!(finished["finished_at"].is_string(), "{finished}");
    let ids: Vec<i64> = app
        .waiting_jobs::<WisproSyncRun>()
        .await
        .iter()
        .map(|(_, p)| p.run_id)
        .collect();
    assert_eq!(ids, [first, second]);
    app.cleanup().await;
}

#[tokio::test]
async fn only_the_admin_token_may_start_or_read_a_run() {
    let app = TestApp::spawn().await;
    let run_id = start_run(&app).await;
    let run = format!("/api/sync-runs/{run_id}");
    for (post, path) in [(true, START), (false, run.as_str())] {
        let res = send(&app, post, path, Some(USER_TOKEN)).await;
        assert_eq!(res.status(), 403, "{path}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], "forbidden", "{body}");

        let res = send(&app, post, path, None).await;
        assert_eq!(res.status(), 401, "{path}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], "unauthorized", "{body}");
    }
    assert_eq!(
        app.waiting_jobs::<WisproSyncRun>().await.len(),
        1,
        "refusals enqueue nothing"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_or_malformed_run_id_is_a_404_or_a_400_in_the_error_schema() {
    let app = TestApp::spawn().await;
    let res = app.get(ADMIN_TOKEN, "/api/sync-runs/424242").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "not_found", "{body}");
    assert!(body["message"].is_string(), "{body}");

    let res = app.get(ADMIN_TOKEN, "/api/sync-runs/abc").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "invalid_parameter", "{body}");
    app.cleanup().await;
}
