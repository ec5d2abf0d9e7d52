use serde_json::{Value, json};
use upstream_sim::{QrStatus, Sim};

use crate::{http, json, start};

async fn create(sim: &Sim, body: Value) -> (u16, Value) {
    json(
        http()
            .post(format!("{}/bank/qr", sim.url()))
            .json(&body)
            .send()
            .await
            .expect("sent"),
    )
    .await
}

async fn status(sim: &Sim, qr_id: &str) -> (u16, Value) {
    json(
        http()
            .get(format!("{}/bank/qr/{qr_id}/status", sim.url()))
            .send()
            .await
            .expect("sent"),
    )
    .await
}

async fn statuses(sim: &Sim, qr_id: &str, reads: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..reads {
        let (code, body) = status(sim, qr_id).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["qr_id"], qr_id);
        assert!(body["checked_at"].is_string());
        out.push(body["status"].as_str().expect("a status").to_owned());
    }
    out
}

#[tokio::test]
async fn a_qr_follows_the_default_script_one_step_per_read() {
    let sim = start().await;
    let (code, body) = create(
        &sim,
        json!({"amount": "125.50", "currency": "BOB", "gloss": "Factura 42"}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"], "pending");
    assert!(
        body["image_png_base64"]
            .as_str()
            .is_some_and(|s| s.starts_with("iVBOR"))
    );
    let expires = body["expires_at"].as_str().expect("expires_at");
    assert!(
        chrono::DateTime::parse_from_rfc3339(expires).is_ok(),
        "{expires}"
    );
    let qr_id = body["qr_id"].as_str().expect("qr_id");
    assert_eq!(
        statuses(&sim, qr_id, 4).await,
        ["pending", "pending", "completed", "completed"]
    );
    assert_eq!(sim.bank().status_reads(qr_id), 4);
    let stats = sim.bank().stats();
    assert_eq!((stats.creations, stats.status_reads), (1, 4));
    sim.stop().await;
}

#[tokio::test]
async fn a_script_comes_from_the_gloss_or_the_control() {
    let sim = start().await;
    let (_, body) = create(
        &sim,
        json!({"amount": "10", "currency": "USD", "gloss": "Pago script:processing,active,cancelled"}),
    )
    .await;
    let qr_id = body["qr_id"].as_str().expect("qr_id").to_owned();
    assert_eq!(
        statuses(&sim, &qr_id, 4).await,
        ["processing", "active", "cancelled", "cancelled"]
    );
    // A new script restarts at its first step.
    assert!(
        sim.bank()
            .set_script(&qr_id, vec![QrStatus::Pending, QrStatus::Completed])
    );
    assert_eq!(statuses(&sim, &qr_id, 2).await, ["pending", "completed"]);
    let (code, shown) = json(
        http()
            .post(format!("{}/_sim/bank/qr/{qr_id}/script", sim.url()))
            .json(&json!({"script": ["expired"]}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((code, shown["reads"].as_u64()), (200, Some(0)), "{shown}");
    assert_eq!(statuses(&sim, &qr_id, 1).await, ["expired"]);
    // The default script is a knob.
    sim.bank().set_default_script(vec![QrStatus::Completed]);
    let (_, body) = create(&sim, json!({"amount": "1.00", "currency": "BOB"})).await;
    assert_eq!(body["status"], "completed");
    let (code, body) = create(
        &sim,
        json!({"amount": "1.00", "currency": "BOB", "gloss": "script:pending,paid"}),
    )
    .await;
    assert_eq!((code, body["field"].as_str()), (400, Some("gloss")));
    sim.stop().await;
}

#[tokio::test]
async fn an_unknown_qr_is_a_404() {
    let sim = start().await;
    let (code, body) = status(&sim, "qr-nope").await;
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    sim.stop().await;
}

#[tokio::test]
async fn an_invalid_request_is_a_400_naming_the_field() {
    let sim = start().await;
    for (body, field) in [
        (json!({"amount": 125.5, "currency": "BOB"}), "amount"),
        (json!({"amount": "12,50", "currency": "BOB"}), "amount"),
        (json!({"amount": "-3", "currency": "BOB"}), "amount"),
        (json!({"amount": "0.00", "currency": "BOB"}), "amount"),
        (json!({"currency": "BOB"}), "amount"),
        (json!({"amount": "5", "currency": "EUR"}), "currency"),
        (
            json!({"amount": "5", "currency": "BOB", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"amount": "5", "currency": "BOB", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"amount": "5", "currency": "BOB", "single_use": "yes"}),
            "single_use",
        ),
    ] {
        let (code, answer) = create(&sim, body.clone()).await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.contains(field))
        );
    }
    assert_eq!(sim.bank().stats().creations, 0);
    sim.stop().await;
}

#[tokio::test]
async fn requests_over_the_rate_limit_get_a_429_and_are_counted() {
    let sim = start().await;
    sim.bank().set_rate_limit(Some(2));
    let mut codes = Vec::new();
    for _ in 0..10 {
        let response = http()
            .get(format!("{}/bank/qr/qr-nope/status", sim.url()))
            .send()
            .await
            .expect("sent");
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
        }
        codes.push(response.status().as_u16());
    }
    let limited = codes.iter().filter(|c| **c == 429).count();
    // Ten quick requests fit in one or two one-second windows of two each.
    assert!((6..=8).contains(&limited), "{codes:?}");
    assert_eq!(sim.bank().stats().rate_limited, limited as u64);
    sim.bank().set_rate_limit(None);
    assert_eq!(status(&sim, "qr-nope").await.0, 404);
    sim.stop().await;
}

#[tokio::test]
async fn error_knobs_answer_a_server_error() {
    let sim = start().await;
    sim.bank().fail_next(1);
    let body = json!({"amount": "5", "currency": "BOB"});
    assert_eq!(create(&sim, body.clone()).await.0, 500);
    assert_eq!(create(&sim, body.clone()).await.0, 201);
    sim.bank().set_error_rate(1.0);
    assert_eq!(create(&sim, body).await.0, 500);
    assert_eq!(sim.bank().stats().errors, 2);
    sim.stop().await;
}

async fn cancel(sim: &Sim, qr_id: &str) -> (u16, Value) {
    json(
        http()
            .post(format!("{}/bank/qr/{qr_id}/cancel", sim.url()))
            .send()
            .await
            .expect("sent"),
    )
    .await
}

#[tokio::test]
async fn a_cancelled_qr_reads_cancelled_and_a_paid_one_refuses_with_its_voucher() {
    let sim = start().await;
    let body = json!({"amount": "5", "currency": "BOB"});
    let (_, open) = create(&sim, body.clone()).await;
    let open = open["qr_id"].as_str().expect("qr_id").to_owned();
    let (code, answer) = cancel(&sim, &open).await;
    assert_eq!((code, answer["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(statuses(&sim, &open, 1).await, ["cancelled"]);
    // Cancelling again is no change, and no second cancellation.
    assert_eq!(cancel(&sim, &open).await.0, 200);
    assert_eq!(sim.bank().stats().cancellations, 1);

    let (_, paid) = create(&sim, body).await;
    let paid = paid["qr_id"].as_str().expect("qr_id").to_owned();
    let (code, shown) = json(
        http()
            .post(format!("{}/_sim/bank/qr/{paid}/pay", sim.url()))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((code, shown["script"].clone()), (200, json!(["completed"])));
    let (code, answer) = cancel(&sim, &paid).await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (409, Some("already_paid"))
    );
    let (_, read) = status(&sim, &paid).await;
    assert_eq!(read["status"], "completed");
    let voucher = sim.bank().qr(&paid).expect("known").voucher_id;
    assert_eq!(read["voucher_id"].as_str(), Some(voucher.as_str()));
    assert_eq!(status(&sim, &open).await.1.get("voucher_id"), None);

    assert_eq!(cancel(&sim, "qr-nope").await.0, 404);
    let pay_unknown = http()
        .post(format!("{}/_sim/bank/qr/qr-nope/pay", sim.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(pay_unknown.status(), 404);
    sim.stop().await;
}
