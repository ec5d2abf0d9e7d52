//! The dashboard in a real headless Chromium, driven over WebDriver, as an
//! operator uses it. `DASHBOARD_SCREENSHOTS=docs` saves the overview and a
//! job page there (the README's pictures).

use std::path::PathBuf;

use queue_core::testing::{PATIENCE, eventually_within};
use serde_json::{Value, json};

use crate::dashboard::create_key;
use crate::helpers::{TestApp, USER_TOKEN};
use crate::webdriver::Chrome;

/// A key of the `operator` role, made with the admin token.
async fn operator_key(app: &TestApp) -> String {
    create_key(app, "ops-carol", "operator").await.0
}

fn screenshot_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DASHBOARD_SCREENSHOTS")?;
    // Relative to the workspace, not the crate the test runs in.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    Some(root.join(dir))
}

async fn sign_in(chrome: &Chrome, app: &TestApp, key: &str) {
    chrome.goto(&app.url("/dashboard/sign-in")).await;
    let field = chrome.find("input#key").await;
    chrome.type_into(&field, key).await;
    chrome.click("form.sign-in button").await;
}

/// A person whose QR fails (its storage is blocked) until it is unblocked.
async fn failed_qr_job(app: &mut TestApp) -> String {
    std::fs::write(app.storage.path().join("qr"), b"in the way").expect("block the dir");
    app.start_qr_worker().await;
    let res = app
        .post_person(
            Some(USER_TOKEN),
            json!({"document": "V-31415926", "first_name": "Ana", "last_name": "Mora"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.expect("json")["id"].clone();
    app.person_until(&format!("/api/persons/{id}"), "failed")
        .await;
    let q = jobs::QR.open(&app.redis.broker).expect("queue");
    let dead = app.redis.dead_letters(&q).await;
    assert_eq!(dead.len(), 1);
    dead[0].job_id.clone()
}

#[tokio::test]
async fn an_operator_retries_a_failed_job_with_a_click_and_the_audit_log_names_them() {
    let mut app = TestApp::spawn().await;
    let job_id = failed_qr_job(&mut app).await;
    let key = operator_key(&app).await;
    let chrome = Chrome::start().await;

    sign_in(&chrome, &app, &key).await;
    // The overview shows the queue with its failed job.
    let failed = chrome
        .text_of(r#"[data-queue="qr"][data-field="failed"]"#)
        .await;
    assert_eq!(failed, "1");
    if let Some(dir) = screenshot_dir() {
        chrome.screenshot(&dir.join("dashboard-overview.png")).await;
    }

    // Open the queue: its failed jobs, this one among them.
    chrome.click(r#"a[href="/dashboard/queues/qr"]"#).await;
    let row = format!(r#"tr[data-job="{job_id}"]"#);
    chrome.find(&row).await;
    // Its page: the error and the headers.
    chrome.click(&format!("{row} a.mono")).await;
    assert_eq!(chrome.text_of("[data-job-state]").await, "failed");
    let page = chrome.body_text().await;
    assert!(page.contains("qr.generate"), "{page}");
    // The payload, decoded from protobuf.
    let payload = chrome.text_of("pre.payload").await;
    assert!(payload.contains(r#""person_id": 1"#), "{payload}");
    if let Some(dir) = screenshot_dir() {
        chrome.screenshot(&dir.join("dashboard-job.png")).await;
    }

    // Fix the cause, click retry, confirm.
    std::fs::remove_file(app.storage.path().join("qr")).expect("unblock");
    chrome.click(".actions a[href*='action=retry']").await;
    assert!(
        chrome
            .body_text()
            .await
            .contains(&format!("Retry job {job_id}?"))
    );
    chrome.click("main form button[type=submit]").await;
    chrome.until_text(&format!("Retried job {job_id}")).await;
    // Back on the queue's failed jobs, without it.
    assert!(chrome.url().await.contains("/dashboard/queues/qr"));
    assert!(
        chrome.find_all(&row).await.is_empty(),
        "it left the failed list"
    );

    // It completes: the completed tab lists it.
    let completed = app.url("/dashboard/queues/qr?state=completed");
    eventually_within("the retried job completes", PATIENCE, async || {
        chrome.goto(&completed).await;
        (!chrome.find_all(&row).await.is_empty()).then_some(())
    })
    .await;

    // The audit log says who retried it.
    chrome.click(r#"nav a[href="/dashboard/audit"]"#).await;
    let entry = chrome.text_of("table.audit tbody tr").await;
    assert!(entry.contains("ops-carol (rsq_"), "{entry}");
    assert!(entry.contains("queue.retry"), "{entry}");
    assert!(entry.contains(&format!("qr/{job_id}")), "{entry}");
    assert!(entry.contains("ok"), "{entry}");
    chrome.quit().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_user_key_cannot_open_the_dashboard() {
    let app = TestApp::spawn().await;
    let (user_key, _) = create_key(&app, "app-frontend", "user").await;
    let chrome = Chrome::start().await;
    sign_in(&chrome, &app, &user_key).await;
    chrome
        .until_text("may use the API but not the dashboard")
        .await;
    chrome.goto(&app.url("/dashboard")).await;
    chrome.find("input#key").await;
    assert!(chrome.url().await.ends_with("/dashboard/sign-in"));
    chrome.quit().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_live_count_follows_jobs_enqueued_without_a_reload() {
    let app = TestApp::spawn().await;
    // The queue exists (and is listed) once something used it.
    let res = app
        .post_person(
            Some(USER_TOKEN),
            json!({"document": "V-10000001", "first_name": "Ana", "last_name": "Mora"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key = operator_key(&app).await;
    let chrome = Chrome::start().await;
    sign_in(&chrome, &app, &key).await;
    let waiting = r#"[data-queue="qr"][data-field="waiting"]"#;
    assert_eq!(chrome.text_of(waiting).await, "1");
    // A mark on this page: a reload would lose it.
    chrome.execute("window.notReloaded = true").await;

    for n in 2..=4 {
        let res = app
            .post_person(
                Some(USER_TOKEN),
                json!({"document": format!("V-1000000{n}"), "first_name": "Ana", "last_name": "Mora"}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    eventually_within("the waiting count reaches 4", PATIENCE, async || {
        (chrome.text_of(waiting).await == "4").then_some(())
    })
    .await;
    assert_eq!(
        chrome.execute("return window.notReloaded === true").await,
        Value::Bool(true),
        "the count changed in place"
    );
    chrome.quit().await;
    app.cleanup().await;
}
