//! Our workloads for an operator: resuming a flagged payment and retrying a
//! failed company context (over the API and from the dashboard, through the
//! row's dead letter when it is kept), and the dashboard's workload pages.

use chrono::Utc;
use jobs::QueueSpec;
use jobs::v1::{CondenseCompanyContext, PaymentStatusCheck};
use queue_core::admin::DeadLetter;
use queue_core::testing::{eventually, fast_worker_config_attempts};
use queue_core::{Job, JobError, NewJob};
use reqwest::StatusCode;
use serde_json::Value;
use store::companies::{self, Company, ContextStatus};
use store::payments::{
    self, CheckApplied, CheckOutcome, Currency, NewCheck, Payment, PaymentStatus,
};
use store::photos::{self, Detection};
use store::sync_runs::{self, PageCounts};

use crate::dashboard::{Browser, create_key};
use crate::helpers::{ADMIN_TOKEN, TestApp, USER_TOKEN, assert_error};

const LLM_ERROR: &str = "3 attempts: the LLM server timed out";
const FLAG_REASON: &str = "20 checks made, still pending at the bank";

async fn failed_company(app: &TestApp, name: &str) -> Company {
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let c = companies::insert(&mut conn, name, "a long story", ContextStatus::Pending)
        .await
        .expect("insert");
    assert!(
        companies::mark_failed(&mut conn, c.id, LLM_ERROR)
            .await
            .expect("fail")
    );
    companies::get(&mut conn, c.id)
        .await
        .expect("get")
        .expect("row")
}

async fn company(app: &TestApp, id: i64) -> Company {
    let mut conn = app.db().pool.acquire().await.expect("conn");
    companies::get(&mut conn, id)
        .await
        .expect("get")
        .expect("row")
}

/// A payment whose 20 checks found it pending, flagged for an operator, with
/// its last check in the history.
async fn flagged_payment(app: &TestApp, qr_id: &str) -> Payment {
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let p = payments::insert(
        &mut conn,
        &payments::NewPayment {
            qr_id,
            amount_cents: 12550,
            currency: Currency::Bob,
            description: "Pedido 42",
            status: PaymentStatus::Pending,
            qr_image_base64: "iVBOR",
            expires_at: Utc::now() + chrono::Duration::hours(1),
            next_check_at: Some(Utc::now()),
        },
    )
    .await
    .expect("insert");
    payments::record_check(
        &mut conn,
        &NewCheck {
            payment_id: p.id,
            check_number: 20,
            outcome: CheckOutcome::Failed,
            status: None,
            changed: false,
            error: Some("attempt 3 of 3: bank timed out"),
            due_at: Some(Utc::now()),
        },
    )
    .await
    .expect("check");
    payments::apply_check(
        &mut conn,
        p.id,
        &CheckApplied {
            checks_made: 20,
            status: PaymentStatus::Pending,
            next_check_at: None,
            operator_reason: Some(FLAG_REASON.into()),
        },
    )
    .await
    .expect("flag")
}

async fn payment(app: &TestApp, id: i64) -> Payment {
    let mut conn = app.db().pool.acquire().await.expect("conn");
    payments::get(&mut conn, id)
        .await
        .expect("get")
        .expect("row")
}

/// `job` on `spec`'s queue, dead-lettered by a worker whose every run fails
/// for good (as a real one leaves it), the worker stopped again.
async fn dead_letter(app: &TestApp, spec: &QueueSpec, job: NewJob) -> DeadLetter {
    let q = spec.open(&app.redis.broker).expect("queue");
    app.redis.enqueue(&q, job).await;
    let worker = app
        .redis
        .spawn_worker(&q, fast_worker_config_attempts(1), |_job: Job| {
            std::future::ready(Err(JobError::permanent(anyhow::anyhow!("refused"))))
        });
    let dead = eventually("the job is dead-lettered", async || {
        app.redis.dead_letters(&q).await.into_iter().next()
    })
    .await;
    worker.stop().await;
    dead
}

async fn post_as(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

/// The newest entry of the audit log.
async fn last_audited(app: &TestApp) -> store::audit::AuditEntry {
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let mut entries = store::audit::list(&mut conn, None, 1)
        .await
        .expect("audit log");
    entries.pop().expect("an entry")
}

async fn accepted(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    res.json().await.expect("json")
}

#[tokio::test]
async fn a_failed_context_is_retried_through_its_dead_letter_if_kept_else_reopened_and_enqueued() {
    let app = TestApp::spawn().await;

    // Its dead letter kept: that job is retried, the row left to the worker.
    let c = failed_company(&app, "Globex").await;
    let dead = dead_letter(&app, &jobs::CONTEXT, jobs::rows::context_job(&c)).await;
    let path = format!("/api/companies/{}/context/retry", c.id);
    assert_error(post_as(&app, USER_TOKEN, &path).await, 403, "forbidden").await;
    let (operator, _) = create_key(&app, "ops-carol", "operator").await;
    let body = accepted(post_as(&app, &operator, &path).await).await;
    assert_eq!(body["company_id"], c.id);
    let audited = last_audited(&app).await;
    assert_eq!(
        (audited.action.as_str(), audited.outcome.as_str()),
        ("company.context_retry", "ok")
    );
    assert_eq!(audited.target, format!("company/{}", c.id));
    assert!(audited.actor.starts_with("ops-carol"), "{}", audited.actor);
    assert_eq!(body["retried_by"], "dead_letter_retried");
    assert_eq!(body["job_id"], dead.job_id.as_str());
    let q = jobs::CONTEXT.open(&app.redis.broker).expect("queue");
    assert!(
        app.redis.dead_letters(&q).await.is_empty(),
        "the dead letter left"
    );
    let waiting = app.waiting_jobs::<CondenseCompanyContext>().await;
    assert_eq!(waiting.len(), 1, "the retried job, no second one beside it");
    assert_eq!(waiting[0].0.id, dead.job_id);
    assert_eq!(waiting[0].1.company_id, c.id);
    assert!(
        waiting[0].0.headers.contains_key("rsq-retried-dead-letter"),
        "{:?}",
        waiting[0].0.headers
    );
    assert_eq!(
        company(&app, c.id).await.context_status,
        ContextStatus::Failed,
        "the worker reopens it as it runs the retried job"
    );

    // No dead letter left: the company is reopened here and its job enqueued.
    let other = failed_company(&app, "Acme").await;
    let path = format!("/api/companies/{}/context/retry", other.id);
    let body = accepted(app.admin_post(&path).await).await;
    assert_eq!(body["retried_by"], "job_enqueued");
    let waiting = app.waiting_jobs::<CondenseCompanyContext>().await;
    let enqueued: Vec<_> = waiting
        .iter()
        .filter(|(_, m)| m.company_id == other.id)
        .collect();
    assert_eq!(enqueued.len(), 1);
    assert_eq!(body["job_id"], enqueued[0].0.id.as_str());
    let reopened = company(&app, other.id).await;
    assert_eq!(reopened.context_status, ContextStatus::Pending);
    assert_eq!(
        reopened.context_error_history[0].error.as_deref(),
        Some(LLM_ERROR)
    );
    // Pending now: a second retry has nothing to do, and the log says so.
    let conflict = assert_error(app.admin_post(&path).await, 409, "conflict").await;
    assert_eq!(conflict["field"], "id");
    let refused = last_audited(&app).await;
    assert_eq!(refused.action, "company.context_retry");
    assert!(
        refused.outcome.contains("has not failed"),
        "{}",
        refused.outcome
    );
    assert_error(
        app.admin_post("/api/companies/999999/context/retry").await,
        404,
        "not_found",
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_flagged_payment_resumes_through_its_dead_letter_if_kept_else_with_its_next_check() {
    let app = TestApp::spawn().await;

    // Its last check still dead-lettered: that check is retried instead.
    let p = flagged_payment(&app, "qr-flagged-1").await;
    let dead = dead_letter(
        &app,
        &jobs::PAYMENT_CHECKS,
        jobs::rows::check_job(p.id, 20, PaymentStatus::Pending, Utc::now()),
    )
    .await;
    let path = "/api/payments/qr-flagged-1/resume";
    assert_error(post_as(&app, USER_TOKEN, path).await, 403, "forbidden").await;
    let (operator, _) = create_key(&app, "ops-dave", "operator").await;
    let body = accepted(post_as(&app, &operator, path).await).await;
    let audited = last_audited(&app).await;
    assert_eq!(
        (audited.action.as_str(), audited.outcome.as_str()),
        ("payment.resume", "ok")
    );
    assert_eq!(audited.target, format!("payment/{}", p.id));
    assert!(audited.actor.starts_with("ops-dave"), "{}", audited.actor);
    assert_eq!(body["payment_id"], p.id);
    assert_eq!(body["qr_id"], "qr-flagged-1");
    assert_eq!(body["resumed_by"], "dead_letter_retried");
    assert_eq!(body["job_id"], dead.job_id.as_str());
    let checks = app.waiting_jobs::<PaymentStatusCheck>().await;
    assert_eq!(checks.len(), 1, "one check of it, the retried one");
    assert_eq!(checks[0].0.id, dead.job_id);
    assert!(checks[0].0.headers.contains_key("rsq-retried-dead-letter"));
    assert!(
        payment(&app, p.id).await.needs_operator,
        "the scheduler reopens it as it runs the retried check"
    );

    // No dead letter left: reopened here, its next check enqueued, due now.
    let other = flagged_payment(&app, "qr-flagged-2").await;
    let path = "/api/payments/qr-flagged-2/resume";
    let body = accepted(app.admin_post(path).await).await;
    assert_eq!(body["resumed_by"], "job_enqueued");
    let checks = app.waiting_jobs::<PaymentStatusCheck>().await;
    let next: Vec<_> = checks
        .iter()
        .filter(|(_, m)| m.payment() == other.id)
        .collect();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.check_number, 21, "the next check");
    assert_eq!(body["job_id"], next[0].0.id.as_str());
    let resumed = payment(&app, other.id).await;
    assert!(!resumed.needs_operator && resumed.next_check_at.is_some());
    assert_eq!(
        resumed.checks_base, 20,
        "the check limit counts again from here"
    );
    assert_eq!(
        resumed.operator_history[0].error.as_deref(),
        Some(FLAG_REASON)
    );
    let conflict = assert_error(app.admin_post(path).await, 409, "conflict").await;
    assert_eq!(conflict["field"], "qr_id");
    assert_error(
        app.admin_post("/api/payments/no-such-qr/resume").await,
        404,
        "not_found",
    )
    .await;
    app.cleanup().await;
}

async fn post_json_as(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn a_flagged_payment_resolved_by_hand_as_paid_books_once_keeps_the_reason_and_is_audited() {
    let app = TestApp::spawn().await;
    let p = flagged_payment(&app, "qr-resolve-1").await;
    let path = "/api/payments/qr-resolve-1/resolve";
    let paid = serde_json::json!({"status": "completed", "reason": "paid in cash, receipt 0042"});
    assert_error(
        post_json_as(&app, USER_TOKEN, path, paid.clone()).await,
        403,
        "forbidden",
    )
    .await;
    let (operator, _) = create_key(&app, "ops-frank", "operator").await;
    for (body, field) in [
        (serde_json::json!({"status": "completed"}), "reason"),
        (
            serde_json::json!({"status": "completed", "reason": "  "}),
            "reason",
        ),
        (
            serde_json::json!({"status": "completed", "reason": "x".repeat(501)}),
            "reason",
        ),
        (
            serde_json::json!({"status": "pending", "reason": "why"}),
            "status",
        ),
        (serde_json::json!({"reason": "why"}), "status"),
    ] {
        let refused = assert_error(
            post_json_as(&app, &operator, path, body.clone()).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(refused["field"], field, "{body}");
    }
    assert!(payment(&app, p.id).await.needs_operator, "nothing changed");

    let res = post_json_as(&app, &operator, path, paid.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["needs_operator"], false);
    assert_eq!(body["next_check_at"], Value::Null);
    assert!(body["paid_at"].is_string(), "{body}");
    assert_eq!(
        body["movements"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    assert_eq!(body["movements"][0]["amount"], "125.50");
    let past = &body["operator_history"][0];
    assert_eq!(past["flag_reason"], FLAG_REASON);
    assert_eq!(past["resolved_as"], "completed");
    assert_eq!(past["resolution_reason"], "paid in cash, receipt 0042");
    assert!(
        past["resolved_by"]
            .as_str()
            .is_some_and(|b| b.starts_with("ops-frank")),
        "{past}"
    );
    let audited = last_audited(&app).await;
    assert_eq!(
        (audited.action.as_str(), audited.outcome.as_str()),
        ("payment.resolve", "ok")
    );
    assert_eq!(audited.target, format!("payment/{}", p.id));
    assert_eq!(
        audited.detail.as_deref(),
        Some("completed: paid in cash, receipt 0042")
    );
    assert!(audited.actor.starts_with("ops-frank"), "{}", audited.actor);

    // Once: it is no longer flagged, and its movement stays one.
    let again = assert_error(
        post_json_as(&app, &operator, path, paid.clone()).await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(again["field"], "qr_id");
    let mut conn = app.db().pool.acquire().await.expect("conn");
    assert_eq!(
        payments::movements(&mut conn, p.id)
            .await
            .expect("movements")
            .len(),
        1
    );
    drop(conn);

    // Cancelled by hand books nothing.
    let other = flagged_payment(&app, "qr-resolve-2").await;
    let res = post_json_as(
        &app,
        &operator,
        "/api/payments/qr-resolve-2/resolve",
        serde_json::json!({"status": "cancelled", "reason": "the customer left"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["movements"], serde_json::json!([]));
    assert_eq!(payment(&app, other.id).await.paid_at, None);
    assert_error(
        post_json_as(&app, &operator, "/api/payments/no-such-qr/resolve", paid).await,
        404,
        "not_found",
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn resolve_by_hand_from_the_dashboard_is_confirmed_with_a_reason_then_shows_its_outcome() {
    let app = TestApp::spawn().await;
    let p = flagged_payment(&app, "qr-dash-resolve").await;
    let (operator, _) = create_key(&app, "ops-gina", "operator").await;
    let mut browser = Browser::new(&app);
    assert_eq!(
        browser.sign_in(&operator).await.status(),
        StatusCode::SEE_OTHER
    );
    let back = format!("/dashboard/workloads/payments/{}", p.id);
    let resolve = format!("{back}/resolve");
    assert!(
        browser.page(&back).await.contains(&resolve),
        "the button is there"
    );
    let confirm = browser.page(&resolve).await;
    assert!(confirm.contains(FLAG_REASON) && confirm.contains("Resolve by hand"));
    let res = browser
        .post(
            &resolve,
            &[
                ("csrf", "forged"),
                ("status", "completed"),
                ("reason", "cash"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        payment(&app, p.id).await.needs_operator,
        "a forged form does nothing"
    );
    // Without a reason: refused, and said so.
    let csrf = csrf_of(&confirm);
    let res = browser
        .post(
            &resolve,
            &[("csrf", &csrf), ("status", "completed"), ("reason", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = browser.page(&back).await;
    assert!(
        page.contains("Nothing was done: reason: is required"),
        "{page}"
    );
    assert!(payment(&app, p.id).await.needs_operator);

    let res = browser
        .post(
            &resolve,
            &[
                ("csrf", &csrf),
                ("status", "expired"),
                ("reason", "never paid, QR gone"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = browser.page(&back).await;
    assert!(
        page.contains("Payment qr-dash-resolve was resolved by hand as expired."),
        "{page}"
    );
    assert!(
        page.contains("never paid, QR gone"),
        "the reason shows: {page}"
    );
    let done = payment(&app, p.id).await;
    assert_eq!(
        (done.status, done.needs_operator),
        (PaymentStatus::Expired, false)
    );
    let audited = last_audited(&app).await;
    assert_eq!(
        (audited.action.as_str(), audited.outcome.as_str()),
        ("payment.resolve", "ok")
    );
    assert!(audited.actor.starts_with("ops-gina"), "{}", audited.actor);
    app.cleanup().await;
}

/// The value of the page's first CSRF field.
fn csrf_of(html: &str) -> String {
    let at =
        html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().expect("a value").to_owned()
}

async fn signed_in(app: &TestApp) -> Browser {
    let mut browser = Browser::new(app);
    let res = browser.sign_in(ADMIN_TOKEN).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    browser
}

#[tokio::test]
async fn the_workload_pages_show_runs_flagged_payments_batches_with_their_bibs_and_failed_contexts()
{
    let app = TestApp::spawn().await;
    let mut conn = app.db().pool.acquire().await.expect("conn");

    // A sync run under way, two of three pages done, with its reasons.
    let run = sync_runs::start(&mut conn, "ops@example.com", 100)
        .await
        .expect("run");
    assert!(
        sync_runs::mark_running(&mut conn, run.id, 3)
            .await
            .expect("running")
    );
    let state = sync_runs::pass_state(&mut conn, run.id)
        .await
        .expect("q")
        .expect("row");
    for (page, counts) in [
        (
            1,
            PageCounts {
                created: 90,
                updated: 8,
                skipped: 2,
                errors: 0,
                samples: vec!["customer 7: ambiguous identity number V-1234567".into()],
            },
        ),
        (
            2,
            PageCounts {
                created: 97,
                updated: 2,
                skipped: 0,
                errors: 1,
                samples: vec!["customer 131: email is not valid".into()],
            },
        ),
    ] {
        assert!(
            sync_runs::record_page(&mut conn, run.id, &state, page, &counts)
                .await
                .expect("page")
        );
    }

    // A batch: one photo completed with two bibs and its thumbnail, one failed.
    let (batch, stored) = photos::insert_batch(
        &mut conn,
        &[
            photos::NewPhoto {
                original_name: Some("finish-line.jpg"),
                storage_path: Some("photos/a.jpg"),
                ..Default::default()
            },
            photos::NewPhoto {
                original_name: Some("blurry.jpg"),
                storage_path: Some("photos/b.jpg"),
                ..Default::default()
            },
        ],
    )
    .await
    .expect("batch");
    let (done, failed) = (stored[0].id, stored[1].id);
    for id in [done, failed] {
        photos::start_processing(&mut conn, id, false)
            .await
            .expect("start");
    }
    let thumb = image::RgbImage::from_pixel(32, 24, image::Rgb([200, 40, 40]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    thumb
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .expect("jpeg");
    std::fs::create_dir_all(app.storage.path().join("thumbs")).expect("dir");
    std::fs::write(app.storage.path().join("thumbs/a.jpg"), jpeg.get_ref()).expect("thumbnail");
    let bib = |number: &str, x: i32, confidence: f32| Detection {
        number: number.into(),
        confidence,
        box_x: x,
        box_y: 50,
        box_width: 80,
        box_height: 40,
    };
    assert!(
        photos::complete(
            &mut conn,
            done,
            &photos::Completed {
                thumbnail_path: "thumbs/a.jpg",
                width: 640,
                height: 480,
                detections: &[bib("123", 100, 0.93), bib("4567", 300, 0.71)],
            },
        )
        .await
        .expect("complete")
    );
    assert!(
        photos::mark_failed(&mut conn, failed, "not a JPEG or PNG")
            .await
            .expect("fail")
    );
    drop(conn);

    let p = flagged_payment(&app, "qr-on-the-page").await;
    let c = failed_company(&app, "Initech").await;
    let mut browser = signed_in(&app).await;

    let front = browser.page("/dashboard/workloads").await;
    for shown in [
        format!("/dashboard/workloads/sync-runs/{}", run.id),
        "qr-on-the-page".into(),
        format!("/dashboard/workloads/photos/batches/{}", batch.id),
        "Initech".into(),
        LLM_ERROR.into(),
    ] {
        assert!(front.contains(&shown), "{shown} on the front page");
    }

    let page = browser
        .page(&format!("/dashboard/workloads/sync-runs/{}", run.id))
        .await;
    assert!(page.contains("running"), "{page}");
    assert!(page.contains("2 / 3"), "pages done");
    assert!(page.contains("customer 7: ambiguous identity number V-1234567"));
    assert!(page.contains("customer 131: email is not valid"));
    assert!(
        page.contains("data-poll="),
        "a run under way reloads its figures"
    );
    let mut conn = app.db().pool.acquire().await.expect("conn");
    assert!(
        sync_runs::finish(&mut conn, run.id, None)
            .await
            .expect("finish")
    );
    drop(conn);
    let page = browser
        .page(&format!("/dashboard/workloads/sync-runs/{}", run.id))
        .await;
    assert!(
        page.contains("completed") && !page.contains("data-poll="),
        "a finished run stays still"
    );

    let page = browser
        .page(&format!("/dashboard/workloads/payments/{}", p.id))
        .await;
    assert!(page.contains(FLAG_REASON));
    assert!(page.contains("125.50 BOB"));
    assert!(
        page.contains("attempt 3 of 3: bank timed out"),
        "the check history"
    );
    assert!(page.contains(&format!("/dashboard/workloads/payments/{}/resume", p.id)));
    let list = browser.page("/dashboard/workloads/payments").await;
    assert!(list.contains("qr-on-the-page"));

    let page = browser
        .page(&format!("/dashboard/workloads/photos/batches/{}", batch.id))
        .await;
    assert!(page.contains(&format!(
        r#"src="/dashboard/workloads/photos/{done}/thumbnail""#
    )));
    assert!(
        page.contains(r#"viewBox="0 0 640 480""#),
        "boxes in the photo's pixels"
    );
    assert!(
        page.contains(r#"<rect x="100" y="50" width="80" height="40">"#),
        "{page}"
    );
    assert!(page.contains(r#"<rect x="300" y="50" width="80" height="40">"#));
    assert!(page.contains("123") && page.contains("4567") && page.contains("93%"));
    assert!(
        page.contains("not a JPEG or PNG"),
        "the failed photo's reason"
    );
    assert!(
        page.contains("2 / 2") && !page.contains("data-poll="),
        "a settled batch"
    );

    let res = browser
        .get(&format!("/dashboard/workloads/photos/{done}/thumbnail"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(
        res.bytes().await.expect("bytes").as_ref(),
        jpeg.get_ref().as_slice()
    );
    let res = Browser::new(&app)
        .get(&format!("/dashboard/workloads/photos/{done}/thumbnail"))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "no thumbnail without a session"
    );

    let page = browser.page("/dashboard/workloads/companies").await;
    assert!(page.contains("Initech") && page.contains(LLM_ERROR));
    assert!(page.contains(&format!("/dashboard/workloads/companies/{}/retry", c.id)));

    let res = browser
        .get("/dashboard/workloads/sync-runs/not-a-number")
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = browser.get("/dashboard/workloads/payments/999999").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let mut user = Browser::new(&app);
    user.sign_in(USER_TOKEN).await;
    assert_ne!(
        user.get("/dashboard/workloads").await.status(),
        StatusCode::OK,
        "a user key does not open the workloads"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn resume_and_retry_from_the_dashboard_are_confirmed_then_show_their_outcome() {
    let app = TestApp::spawn().await;
    let p = flagged_payment(&app, "qr-dashboard").await;
    let c = failed_company(&app, "Umbrella").await;
    let (operator, _) = create_key(&app, "ops-erin", "operator").await;
    let mut browser = Browser::new(&app);
    assert_eq!(
        browser.sign_in(&operator).await.status(),
        StatusCode::SEE_OTHER
    );

    // The confirmation page changes nothing; its form does.
    let resume = format!("/dashboard/workloads/payments/{}/resume", p.id);
    let confirm = browser.page(&resume).await;
    assert!(confirm.contains(FLAG_REASON) && confirm.contains("Resume checking"));
    assert!(payment(&app, p.id).await.needs_operator);
    let res = browser.post(&resume, &[("csrf", "forged")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        payment(&app, p.id).await.needs_operator,
        "a forged form does nothing"
    );
    let res = browser.post(&resume, &[("csrf", &csrf_of(&confirm))]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = format!("/dashboard/workloads/payments/{}", p.id);
    assert_eq!(res.headers()["location"], back.as_str());
    let page = browser.page(&back).await;
    assert!(
        page.contains(
            "Payment qr-dashboard is checked again: it was reopened and its job enqueued."
        ),
        "{page}"
    );
    assert!(!payment(&app, p.id).await.needs_operator);
    assert_eq!(app.waiting_jobs::<PaymentStatusCheck>().await.len(), 1);
    let audited = last_audited(&app).await;
    assert_eq!(
        (audited.action.as_str(), audited.outcome.as_str()),
        ("payment.resume", "ok")
    );
    assert!(audited.actor.starts_with("ops-erin"), "{}", audited.actor);
    // Again, from a stale page: refused, and said so.
    let res = browser.post(&resume, &[("csrf", &csrf_of(&confirm))]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = browser.page(&back).await;
    assert!(
        page.contains("Nothing was done: qr_id: payment qr-dashboard is not flagged"),
        "{page}"
    );

    let retry = format!("/dashboard/workloads/companies/{}/retry", c.id);
    let confirm = browser.page(&retry).await;
    assert!(confirm.contains(LLM_ERROR));
    let res = browser.post(&retry, &[("csrf", &csrf_of(&confirm))]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = browser.page("/dashboard/workloads/companies").await;
    assert!(
        page.contains(&format!(
            "The context of company #{} is condensed again",
            c.id
        )),
        "{page}"
    );
    assert!(!page.contains(LLM_ERROR), "it left the failed list");
    assert_eq!(
        company(&app, c.id).await.context_status,
        ContextStatus::Pending
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_job_page_shows_its_payload_as_json_with_the_proto_field_names() {
    let app = TestApp::spawn().await;
    let q = jobs::QR.open(&app.redis.broker).expect("queue");
    let job = jobs::new_job(&jobs::v1::GenerateQr {
        person_id: 42,
        content: "PERSON:V-12345678".into(),
        path: "qr/42.png".into(),
    });
    let id = app.redis.enqueue(&q, job).await.id().to_owned();
    // A kind no catalogue knows: shown as why, and its bytes.
    let stranger = NewJob::new("no.such.kind", vec![0x08, 0x01]);
    let stranger = app.redis.enqueue(&q, stranger).await.id().to_owned();
    let mut browser = signed_in(&app).await;

    let page = browser
        .page(&format!("/dashboard/queues/qr/jobs/{id}"))
        .await;
    for field in [
        "&quot;person_id&quot;: 42",
        "&quot;content&quot;: &quot;PERSON:V-12345678&quot;",
        "&quot;path&quot;: &quot;qr/42.png&quot;",
    ] {
        assert!(page.contains(field), "{field} in {page}");
    }
    let page = browser
        .page(&format!("/dashboard/queues/qr/jobs/{stranger}"))
        .await;
    assert!(
        page.contains(
            "The payload cannot be shown as JSON: unknown job kind &quot;no.such.kind&quot;"
        ),
        "{page}"
    );
    assert!(page.contains("08 01"), "the bytes as hex");
    app.cleanup().await;
}

#[tokio::test]
async fn with_a_scheduler_running_a_resumed_payment_is_checked_again_until_paid() {
    // The bank answers pending, pending, then completed; one check is allowed
    // before an operator is asked, so each pending answer flags the payment.
    let sim = upstream_sim::Sim::start(upstream_sim::SimConfig::default())
        .await
        .expect("sim");
    let url = sim.url();
    let app = TestApp::spawn_with(move |c| {
        c.payments.bank.url = url;
        c.payments.schedule.delay_pending = std::time::Duration::from_millis(20);
        c.payments.schedule.max_checks = 1;
    })
    .await;
    let scheduler = crate::payments::start_scheduler(&app).await;
    let res = app
        .client
        .post(app.url("/api/payments/qr"))
        .bearer_auth(USER_TOKEN)
        .json(&serde_json::json!({"amount": "99.90", "currency": "BOB"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.expect("json");
    let id = created["id"].as_i64().expect("id");
    let resume = format!(
        "/api/payments/{}/resume",
        created["qr_id"].as_str().expect("qr_id")
    );
    let flagged_after = async |checks: i32| {
        eventually("the payment is flagged for an operator", async || {
            let p = payment(&app, id).await;
            (p.needs_operator && p.checks_made == checks).then_some(p)
        })
        .await
    };

    flagged_after(1).await;
    accepted(app.admin_post(&resume).await).await;
    let again = flagged_after(2).await;
    assert_eq!(again.operator_history.len(), 1, "the first flag is kept");
    accepted(app.admin_post(&resume).await).await;
    let paid = eventually("the payment is completed", async || {
        let p = payment(&app, id).await;
        (p.status == PaymentStatus::Completed).then_some(p)
    })
    .await;
    assert_eq!(paid.checks_made, 3);
    assert!(!paid.needs_operator && paid.paid_at.is_some());
    let mut conn = app.db().pool.acquire().await.expect("conn");
    assert_eq!(
        payments::movements(&mut conn, id)
            .await
            .expect("movements")
            .len(),
        1
    );
    drop(conn);
    scheduler.stop().await;
    app.cleanup().await;
    sim.stop().await;
}
