//! Payment QRs through the gateway: created at the bank simulator, stored,
//! their first check scheduled; refused with a 422 naming the field before the
//! bank is asked; and, with a payment-scheduler running, followed to `completed`
//! with one movement. Each runs against the simulator's own contract and its
//! BNB "QR Simple" mode (`name::sim`, `name::bnb`).

use std::time::Duration;

use queue_core::Every;
use queue_core::testing::eventually;
use serde_json::{Value, json};
use service::config::ReconcileConfig;
use upstream_sim::bank::bnb::{DEFAULT_ACCOUNT_ID, DEFAULT_AUTHORIZATION_ID};
use upstream_sim::{Sim, SimConfig};

use crate::helpers::{TestApp, USER_TOKEN};

/// The bank the gateway (and its scheduler) is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `BANK_PROVIDER=sim`: the simulator's own contract.
    Sim,
    /// `BANK_PROVIDER=bnb`: the simulator's BNB mode.
    Bnb,
}

/// Runs each named `async fn name(provider: Provider)` against both
/// providers, as the tests `name::sim` and `name::bnb`.
macro_rules! both_providers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sim() {
                super::$name(super::Provider::Sim).await
            }

            #[tokio::test]
            async fn bnb() {
                super::$name(super::Provider::Bnb).await
            }
        }
    )*};
}

both_providers!(
    a_payment_qr_is_created_at_the_bank_stored_pending_and_its_first_check_scheduled,
    a_bad_amount_or_currency_is_a_422_naming_the_field_and_the_bank_is_not_asked,
    a_bank_that_fails_is_a_503_and_nothing_is_stored,
    with_a_scheduler_running_a_paid_qr_ends_completed_with_its_checks_and_one_movement,
);

async fn spawn(sim: &Sim, delay_pending: Duration) -> TestApp {
    spawn_at(sim, delay_pending, Provider::Sim).await
}

/// A gateway whose bank is `sim`, spoken to as `provider`.
pub async fn spawn_at(sim: &Sim, delay_pending: Duration, provider: Provider) -> TestApp {
    let url = sim.url();
    TestApp::spawn_with(move |c| {
        c.payments.bank.bnb = (provider == Provider::Bnb)
            .then(|| payments::BnbConfig::new(&url, DEFAULT_ACCOUNT_ID, DEFAULT_AUTHORIZATION_ID));
        c.payments.bank.url = url;
        c.payments.schedule.delay_pending = delay_pending;
    })
    .await
}

async fn post(app: &TestApp, body: Value) -> (u16, Value, Option<String>) {
    let res = app
        .client
        .post(app.url("/api/payments/qr"))
        .bearer_auth(USER_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, res.json().await.expect("json"), location)
}

/// A payment-scheduler behind `app`, as its `main` runs it, on the app's bank
/// and schedule, with fast workers.
pub async fn start_scheduler(app: &TestApp) -> service::testing::Running {
    let config = payment_scheduler::Config {
        base: service::testing::base_config(&app.redis.prefix, &app.db().url),
        worker: service::testing::fast_worker_config(&jobs::PAYMENT_CHECKS),
        bank: app.config.payments.bank.clone(),
        schedule: app.config.payments.schedule,
        cleanup: payment_scheduler::CleanupConfig {
            every: Every::daily_at(3, 0).expect("valid"),
            retention: Duration::from_secs(86_400),
        },
        reconcile: ReconcileConfig {
            interval: Duration::from_secs(3600),
            after: Duration::from_secs(3600),
            batch: 500,
        },
    };
    service::testing::Running::spawn(
        payment_scheduler::start(config)
            .await
            .expect("the scheduler starts"),
    )
}

async fn payments_stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&app.db().pool)
        .await
        .expect("count")
}

async fn a_payment_qr_is_created_at_the_bank_stored_pending_and_its_first_check_scheduled(
    provider: Provider,
) {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let app = spawn_at(&sim, Duration::from_secs(120), provider).await;
    let before = chrono::Utc::now();
    let (status, body, location) = post(
        &app,
        json!({"amount": "125.50", "currency": "BOB", "description": "Pedido 42"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let qr_id = body["qr_id"].as_str().expect("qr_id").to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/api/payments/{qr_id}").as_str())
    );
    assert_eq!(body["amount"], "125.50");
    assert_eq!(body["currency"], "BOB");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["checks_made"], 0);
    assert_eq!(body["checks"], json!([]));
    assert_eq!(body["movements"], json!([]));
    assert!(
        body["qr_image"]
            .as_str()
            .is_some_and(|s| s.starts_with("data:image/png;base64,")),
        "{body}"
    );
    // The first check is due at once; the status delays apply from the second.
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["next_check_at"].clone()).expect("next_check_at");
    assert!(
        next >= before && next <= chrono::Utc::now(),
        "due at creation: {next}"
    );
    let qr = sim.bank().qr(&qr_id).expect("the bank has the QR");
    assert_eq!(
        (qr.amount.as_str(), qr.gloss.as_str()),
        ("125.50", "Pedido 42")
    );

    // The first check waits on its lane under its key, runnable at once.
    let queue = jobs::PAYMENT_CHECKS.open(&app.redis.broker).expect("queue");
    let id = body["id"].as_i64().expect("id");
    let key = queue.keys().uniq(&format!("payment:{id}:check:1"));
    let holder: Option<String> = app.redis.cmd(redis::cmd("GET").arg(&key)).await;
    assert!(holder.is_some(), "the check's key is held");
    let s = app.redis.stats(&queue).await;
    assert_eq!((s.waiting, s.delayed), (1, 0), "{s:#?}");

    let res = app.get(USER_TOKEN, &format!("/api/payments/{qr_id}")).await;
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.expect("json");
    assert_eq!(got["id"], body["id"]);
    assert_eq!(got["status"], "pending");
    let res = app.get(USER_TOKEN, "/api/payments/qr-unknown").await;
    assert_eq!(res.status(), 404);
    app.cleanup().await;
    sim.stop().await;
}

// The simulator's own contract only: BNB's creation answers no status.
#[tokio::test]
async fn a_qr_the_bank_reports_paid_at_creation_is_answered_completed_with_its_movement() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let app = spawn(&sim, Duration::from_secs(120)).await;
    let (status, body, _) = post(
        &app,
        json!({"amount": "10.00", "currency": "BOB", "description": "script:completed"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "completed");
    assert!(body["paid_at"].is_string(), "{body}");
    assert_eq!(body["next_check_at"], Value::Null);
    let movements = body["movements"].as_array().expect("movements");
    assert_eq!(movements.len(), 1, "{body}");
    assert_eq!(movements[0]["amount"], "10.00");
    app.cleanup().await;
    sim.stop().await;
}

async fn a_bad_amount_or_currency_is_a_422_naming_the_field_and_the_bank_is_not_asked(
    provider: Provider,
) {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let app = spawn_at(&sim, Duration::from_secs(120), provider).await;
    for (body, field) in [
        (json!({"amount": 1e3, "currency": "BOB"}), "amount"),
        (json!({"amount": 125.5, "currency": "BOB"}), "amount"),
        (json!({"amount": "1e3", "currency": "BOB"}), "amount"),
        (json!({"amount": "-10.00", "currency": "BOB"}), "amount"),
        (json!({"amount": "0.00", "currency": "BOB"}), "amount"),
        (json!({"amount": "10.505", "currency": "BOB"}), "amount"),
        (json!({"amount": "10", "currency": "EUR"}), "currency"),
        (
            json!({"amount": "10", "currency": "BOB", "description": "x".repeat(201)}),
            "description",
        ),
        (
            json!({"amount": "10", "currency": "BOB", "expires_at": "2000-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let (status, answer, _) = post(&app, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"], "validation_failed", "{answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    assert_eq!(sim.bank().stats().creations, 0);
    assert_eq!(payments_stored(&app).await, 0);
    app.cleanup().await;
    sim.stop().await;
}

async fn a_bank_that_fails_is_a_503_and_nothing_is_stored(provider: Provider) {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let app = spawn_at(&sim, Duration::from_secs(120), provider).await;
    sim.bank().fail_next(1);
    let (status, body, _) = post(&app, json!({"amount": "10", "currency": "USD"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "unavailable");
    assert_eq!(payments_stored(&app).await, 0);
    app.cleanup().await;
    sim.stop().await;
}

async fn with_a_scheduler_running_a_paid_qr_ends_completed_with_its_checks_and_one_movement(
    provider: Provider,
) {
    let sim = Sim::start(SimConfig::default()).await.expect("sim"); // pending, pending, completed
    let app = spawn_at(&sim, Duration::from_millis(20), provider).await;
    let scheduler = start_scheduler(&app).await;
    let (status, body, _) = post(&app, json!({"amount": "99.90", "currency": "BOB"})).await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/payments/{}", body["qr_id"].as_str().expect("qr_id"));
    let done = eventually("the payment is completed", async || {
        let got: Value = app.get(USER_TOKEN, &path).await.json().await.ok()?;
        (got["status"] == "completed").then_some(got)
    })
    .await;
    assert_eq!(done["checks_made"], 3);
    let seen: Vec<&Value> = done["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| &c["status"])
        .collect();
    assert_eq!(
        seen,
        [&json!("pending"), &json!("pending"), &json!("completed")]
    );
    assert_eq!(done["next_check_at"], Value::Null);
    let movements = done["movements"].as_array().expect("movements");
    assert_eq!(movements.len(), 1);
    assert_eq!(
        (&movements[0]["amount"], &movements[0]["currency"]),
        (&json!("99.90"), &json!("BOB"))
    );
    let stored = store::payments::movements(
        &mut app.db().pool.acquire().await.expect("conn"),
        done["id"].as_i64().expect("id"),
    )
    .await
    .expect("movements");
    let qr_id = done["qr_id"].as_str().expect("qr_id");
    let voucher = sim.bank().qr(qr_id).expect("known").voucher_id;
    assert_eq!(
        stored[0].voucher_id,
        Some(voucher.clone()),
        "the bank's voucher is kept"
    );
    assert_eq!(
        movements[0]["voucher_id"],
        json!(voucher),
        "and shown with the movement"
    );
    scheduler.stop().await;
    app.cleanup().await;
    sim.stop().await;
}

const NOTIFY_SECRET: &str = "bank-notify-secret-0123456789";

/// A notification for `qr_id` as the bank signs it, at `at` (Unix seconds).
async fn notify_signed(app: &TestApp, body: &Value, at: i64) -> reqwest::Response {
    let body = serde_json::to_vec(body).expect("json");
    app.client
        .post(app.url("/api/payments/notifications"))
        .header("content-type", "application/json")
        .header("x-timestamp", at.to_string())
        .header(
            "x-signature",
            api_gateway::signature::sign(NOTIFY_SECRET, at, &body),
        )
        .body(body)
        .send()
        .await
        .expect("request")
}

async fn notify_with(app: &TestApp, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/payments/notifications"))
        .json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn the_qr_png_is_the_banks_image_cacheable_for_good_behind_a_key() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let app = spawn(&sim, Duration::from_secs(120)).await;
    let (status, body, _) = post(&app, json!({"amount": "12.00", "currency": "BOB"})).await;
    assert_eq!(status, 201, "{body}");
    let path = format!(
        "/api/payments/{}/qr.png",
        body["qr_id"].as_str().expect("qr_id")
    );
    let res = app.get(USER_TOKEN, &path).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let cache = res.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cache.contains("immutable") && cache.contains("max-age="),
        "{cache}"
    );
    let png = res.bytes().await.expect("bytes");
    let stored = body["qr_image"]
        .as_str()
        .and_then(|s| s.strip_prefix("data:image/png;base64,"))
        .expect("a data URL");
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .expect("base64");
    assert_eq!(
        png.as_ref(),
        expected.as_slice(),
        "the bank's image, as created"
    );
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let image = image::load_from_memory(&png).expect("a PNG that decodes");
    assert!(image.width() > 0 && image.height() > 0);

    let res = app.get(USER_TOKEN, "/api/payments/qr-unknown/qr.png").await;
    crate::helpers::assert_error(res, 404, "not_found").await;
    crate::helpers::assert_unauthorized(app.get_anonymous(&path).await).await;
    // Notifications are off without BANK_NOTIFY_SECRET.
    let res = notify_with(
        &app,
        &[("x-notify-secret", NOTIFY_SECRET)],
        &json!({"QRId": "x"}),
    )
    .await;
    crate::helpers::assert_error(res, 503, "unavailable").await;
    app.cleanup().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_signed_notification_confirms_a_paid_qr_at_once_and_a_replay_books_nothing_more() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let url = sim.url();
    // Polling alone would look again in an hour: only the notification can
    // explain a confirmation within the test.
    let app = TestApp::spawn_with(move |c| {
        c.payments.bank.url = url;
        c.payments.schedule.delay_pending = Duration::from_secs(3600);
        c.payments.notify.secret = Some(api_gateway::config::Secret::new(NOTIFY_SECRET));
    })
    .await;
    let scheduler = start_scheduler(&app).await;
    let (status, body, _) = post(
        &app,
        json!({"amount": "55.00", "currency": "BOB", "description": "script:pending"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let qr_id = body["qr_id"].as_str().expect("qr_id").to_owned();
    let path = format!("/api/payments/{qr_id}");
    eventually("the first check is made", async || {
        let got: Value = app.get(USER_TOKEN, &path).await.json().await.ok()?;
        (got["checks_made"] == 1).then_some(())
    })
    .await;

    // Refused: no signature, a wrong one, an old one, the wrong secret.
    let now = chrono::Utc::now().timestamp();
    let notification = json!({"QRId": qr_id, "VoucherId": "8462910", "Gloss": "script:pending"});
    for res in [
        notify_with(&app, &[], &notification).await,
        notify_with(
            &app,
            &[
                ("x-timestamp", &now.to_string()),
                ("x-signature", "sha256=00"),
            ],
            &notification,
        )
        .await,
        notify_signed(&app, &notification, now - 3600).await,
        notify_with(
            &app,
            &[("x-notify-secret", "not-the-secret-at-all")],
            &notification,
        )
        .await,
    ] {
        crate::helpers::assert_error(res, 401, "unauthorized").await;
    }

    assert!(sim.bank().pay(&qr_id));
    let res = notify_signed(&app, &notification, now).await;
    assert_eq!(res.status(), 202);
    let accepted: Value = res.json().await.expect("json");
    assert_eq!(accepted["qr_id"], qr_id.as_str());
    assert!(
        accepted["check"] == "enqueued" || accepted["check"] == "already_queued",
        "{accepted}"
    );
    let done = eventually("the notified payment is completed", async || {
        let got: Value = app.get(USER_TOKEN, &path).await.json().await.ok()?;
        (got["status"] == "completed").then_some(got)
    })
    .await;
    assert_eq!(
        done["checks_made"], 2,
        "the notified check is check 2: {done}"
    );
    assert_eq!(done["movements"].as_array().map(Vec::len), Some(1));

    // The same notification again, signed or by the plain secret: nothing more.
    let res = notify_signed(&app, &notification, now).await;
    assert_eq!(res.status(), 202);
    let again: Value = res.json().await.expect("json");
    assert_eq!(
        (&again["check"], &again["status"]),
        (&json!("not_needed"), &json!("completed"))
    );
    let res = notify_with(
        &app,
        &[("x-notify-secret", NOTIFY_SECRET)],
        &json!({"qrId": qr_id}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let reads = sim.bank().status_reads(&qr_id);
    let after: Value = app.get(USER_TOKEN, &path).await.json().await.expect("json");
    assert_eq!(after["checks_made"], 2);
    assert_eq!(after["movements"].as_array().map(Vec::len), Some(1));
    assert_eq!(sim.bank().status_reads(&qr_id), reads);

    let res = notify_signed(&app, &json!({"QRId": "qr-nobody-made"}), now).await;
    crate::helpers::assert_error(res, 404, "not_found").await;
    let res = notify_signed(&app, &json!({"Gloss": "no id"}), now).await;
    let refused = crate::helpers::assert_error(res, 422, "validation_failed").await;
    assert_eq!(refused["field"], "QRId");
    scheduler.stop().await;
    app.cleanup().await;
    sim.stop().await;
}

async fn cancel(app: &TestApp, qr_id: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/payments/{qr_id}/cancel")))
        .bearer_auth(USER_TOKEN)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn a_cancel_reaches_the_bank_ends_the_checks_and_a_qr_paid_meanwhile_is_checked_at_once() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let app = spawn(&sim, Duration::from_millis(50)).await;
    let mut qr_ids = Vec::new();
    for amount in ["20.00", "30.00"] {
        let (status, body, _) = post(
            &app,
            json!({"amount": amount, "currency": "BOB", "description": "script:pending"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        qr_ids.push(body["qr_id"].as_str().expect("qr_id").to_owned());
    }
    let (qr_id, paid_qr) = (&qr_ids[0], &qr_ids[1]);
    let first_checks = app.waiting_jobs::<jobs::v1::PaymentStatusCheck>().await;
    assert_eq!(first_checks.len(), 2, "their first checks wait");

    let res = cancel(&app, qr_id).await;
    assert_eq!(res.status(), 200);
    let cancelled: Value = res.json().await.expect("json");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["next_check_at"], Value::Null);
    assert_eq!(
        sim.bank().stats().cancellations,
        1,
        "the bank saw the cancel"
    );
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let audited = store::audit::list(&mut conn, None, 1)
        .await
        .expect("audit")
        .pop()
        .expect("an entry");
    drop(conn);
    assert_eq!(
        (audited.action.as_str(), audited.outcome.as_str()),
        ("payment.cancel", "ok")
    );
    assert_eq!(audited.target, format!("payment/{}", cancelled["id"]));

    // Paid before the cancel reached the bank: 409, and a check now.
    assert!(sim.bank().pay(paid_qr));
    let refused = crate::helpers::assert_error(cancel(&app, paid_qr).await, 409, "conflict").await;
    assert_eq!(refused["field"], "qr_id");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("paid meanwhile")),
        "{refused}"
    );
    let paid_id = app
        .get_json(USER_TOKEN, &format!("/api/payments/{paid_qr}"))
        .await["id"]
        .as_i64()
        .expect("id");
    let checks = app.waiting_jobs::<jobs::v1::PaymentStatusCheck>().await;
    assert!(
        checks
            .iter()
            .any(|(_, m)| m.payment() == paid_id && m.check_number == 0),
        "a notified check of it waits: {checks:?}"
    );

    // The cancelled one's queued check finds it final and asks the bank nothing.
    let scheduler = start_scheduler(&app).await;
    let queue = jobs::PAYMENT_CHECKS.open(&app.redis.broker).expect("queue");
    for (envelope, _) in &first_checks {
        app.redis.completed_until(&queue, &envelope.id).await;
    }
    assert_eq!(sim.bank().status_reads(qr_id), 0);
    let path = format!("/api/payments/{paid_qr}");
    let done = eventually("the paid payment is completed", async || {
        let got: Value = app.get(USER_TOKEN, &path).await.json().await.ok()?;
        (got["status"] == "completed").then_some(got)
    })
    .await;
    assert_eq!(done["movements"].as_array().map(Vec::len), Some(1));

    // Cancelling again answers the same, without a second call to the bank.
    let res = cancel(&app, qr_id).await;
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.expect("json");
    assert_eq!(
        (&again["status"], &again["checks_made"]),
        (&json!("cancelled"), &json!(0))
    );
    assert_eq!(sim.bank().stats().cancellations, 1);
    let refused = crate::helpers::assert_error(cancel(&app, paid_qr).await, 409, "conflict").await;
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("completed")),
        "{refused}"
    );
    crate::helpers::assert_error(cancel(&app, "qr-unknown").await, 404, "not_found").await;
    scheduler.stop().await;
    app.cleanup().await;
    sim.stop().await;
}
