//! The bank's BNB "QR Simple" mode over real HTTP: tokens, in-body refusals,
//! the shapes public clients send, statusId, cancel and the day's list.

use std::time::Duration;

use serde_json::{Value, json};
use upstream_sim::Sim;
use upstream_sim::bank::bnb::{
    DEFAULT_ACCOUNT_ID, DEFAULT_AUTHORIZATION_ID, QR_PATH, TOKEN_PATH, bolivian_date,
};

use crate::{http, json, start};

async fn token(sim: &Sim) -> String {
    let (code, body) = json(
        http()
            .post(format!("{}{TOKEN_PATH}", sim.url()))
            .json(&json!({"accountId": DEFAULT_ACCOUNT_ID, "authorizationId": DEFAULT_AUTHORIZATION_ID}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (code, body["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    body["message"].as_str().expect("a token").to_owned()
}

async fn call(sim: &Sim, token: &str, operation: &str, body: Value) -> (u16, Value) {
    json(
        http()
            .post(format!("{}{QR_PATH}/{operation}", sim.url()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("sent"),
    )
    .await
}

fn today() -> String {
    bolivian_date(chrono::Utc::now()).to_string()
}

#[tokio::test]
async fn public_clients_shapes_are_all_accepted() {
    let sim = start().await;
    let t = token(&sim).await;
    let mut ids = Vec::new();
    for (amount, single_use) in [
        (json!("150.00"), json!("true")),
        (json!(150.5), json!(true)),
        (json!(20), json!("false")),
    ] {
        let (code, body) = call(
            &sim,
            &t,
            "getQRWithImageAsync",
            json!({"currency": "BOB", "gloss": "Pedido script:pending", "amount": amount,
                   "singleUse": single_use, "expirationDate": today(),
                   "additionalData": "ref-1", "destinationAccountId": "1"}),
        )
        .await;
        assert_eq!(
            (code, body["success"].as_bool()),
            (200, Some(true)),
            "{body}"
        );
        assert!(body["qr"].as_str().is_some_and(|q| q.starts_with("iVBOR")));
        ids.push(body["id"].as_u64().expect("a numeric id"));
    }
    let amounts: Vec<String> = ids
        .iter()
        .map(|id| sim.bank().qr(&id.to_string()).expect("known").amount)
        .collect();
    assert_eq!(amounts, ["150.00", "150.5", "20"]);
    assert!(
        !sim.bank()
            .qr(&ids[2].to_string())
            .expect("known")
            .single_use
    );
    // The status by `qrId` or `id`, as a number or a string.
    for request in [
        json!({"qrId": ids[0]}),
        json!({"qrId": ids[0].to_string()}),
        json!({"id": ids[0]}),
    ] {
        let (code, body) = call(&sim, &t, "getQRStatusAsync", request.clone()).await;
        assert_eq!(
            (code, body["statusId"].as_u64()),
            (200, Some(1)),
            "{request}: {body}"
        );
        assert_eq!(body["voucherId"], "0");
    }
    // The image as bytes on request.
    sim.bank().update_knobs(|k| k.bnb_image_as_bytes = true);
    let (_, body) = call(
        &sim,
        &t,
        "getQRWithImageAsync",
        json!({"currency": "USD", "gloss": "g", "amount": "1", "expirationDate": today()}),
    )
    .await;
    let bytes = body["qr"].as_array().expect("a byte array");
    assert_eq!(&bytes[..4], [137, 80, 78, 71].map(Value::from), "a PNG");
    sim.stop().await;
}

#[tokio::test]
async fn refusals_come_in_the_body_with_http_200_and_name_the_field() {
    let sim = start().await;
    let t = token(&sim).await;
    for (request, field) in [
        (
            json!({"currency": "EUR", "gloss": "g", "amount": "1", "expirationDate": today()}),
            "currency",
        ),
        (
            json!({"currency": "BOB", "gloss": "g", "amount": "1,50", "expirationDate": today()}),
            "amount",
        ),
        (
            json!({"currency": "BOB", "gloss": "g", "amount": "1", "singleUse": 1, "expirationDate": today()}),
            "singleUse",
        ),
        (
            json!({"currency": "BOB", "gloss": "g", "amount": "1", "expirationDate": "2001-01-01"}),
            "expirationDate",
        ),
    ] {
        let (code, body) = call(&sim, &t, "getQRWithImageAsync", request.clone()).await;
        assert_eq!(
            (code, body["success"].as_bool()),
            (200, Some(false)),
            "{request}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(field)),
            "{body}"
        );
    }
    let (code, body) = call(&sim, &t, "getQRStatusAsync", json!({"qrId": 424242})).await;
    assert_eq!(
        (code, body["success"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let wrong = http()
        .post(format!("{}{TOKEN_PATH}", sim.url()))
        .json(&json!({"accountId": DEFAULT_ACCOUNT_ID, "authorizationId": "nope"}))
        .send()
        .await
        .expect("sent");
    let (code, body) = json(wrong).await;
    assert_eq!(
        (code, body["success"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    assert_eq!(sim.bank().stats().creations, 0);
    sim.stop().await;
}

#[tokio::test]
async fn a_qr_call_needs_a_live_token() {
    let sim = start().await;
    sim.bank()
        .update_knobs(|k| k.bnb_token_ttl = Duration::from_millis(300));
    let request = json!({"generationDate": today()});
    let (code, _) = call(
        &sim,
        "made-up",
        "getQRbyGenerationDateAsync",
        request.clone(),
    )
    .await;
    assert_eq!(code, 401);
    let t = token(&sim).await;
    let (code, _) = call(&sim, &t, "getQRbyGenerationDateAsync", request.clone()).await;
    assert_eq!(code, 200);
    crate::eventually_401(&sim, &t).await;
    let stats = sim.bank().stats();
    assert_eq!(stats.tokens_issued, 1);
    assert!(stats.unauthorized >= 2, "{stats:?}");
    sim.stop().await;
}

#[tokio::test]
async fn status_ids_follow_the_script_and_cancel_and_list_see_the_same_qrs() {
    let sim = start().await;
    let t = token(&sim).await;
    let create = async |gloss: &str| {
        let (_, body) = call(
            &sim,
            &t,
            "getQRWithImageAsync",
            json!({"currency": "BOB", "gloss": gloss, "amount": "5", "expirationDate": today()}),
        )
        .await;
        body["id"].as_u64().expect("an id")
    };
    let id = create("Pago script:pending,completed").await;
    let read = async |id: u64| {
        call(&sim, &t, "getQRStatusAsync", json!({"qrId": id}))
            .await
            .1
    };
    assert_eq!(read(id).await["statusId"], 1);
    let paid = read(id).await;
    assert_eq!(paid["statusId"], 2);
    let voucher = sim.bank().qr(&id.to_string()).expect("known").voucher_id;
    assert_eq!(paid["voucherId"], voucher.as_str());
    let (_, refused) = call(&sim, &t, "CancelQRByIdAsync", json!({"qrId": id})).await;
    assert_eq!(refused["success"], false, "a paid QR is not cancelled");

    let open = create("Pago").await;
    let (_, done) = call(&sim, &t, "CancelQRByIdAsync", json!({"qrId": open})).await;
    assert_eq!(done["success"], true, "{done}");
    assert_eq!(read(open).await["statusId"], 3);
    let failing = create("Pago script:error").await;
    assert_eq!(read(failing).await["statusId"], 4);

    // The lower-case-B spelling some clients use.
    let (_, list) = call(
        &sim,
        &t,
        "getQRByGenerationDateAsync",
        json!({"generationDate": today()}),
    )
    .await;
    let listed: Vec<(u64, u64)> = list["dTOqrDetails"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|q| {
            (
                q["id"].as_u64().expect("id"),
                q["statusId"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(listed, [(id, 2), (open, 3), (failing, 4)]);
    // QRs of the own contract are not BNB's.
    assert_eq!(sim.bank().stats().cancellations, 1);
    sim.stop().await;
}
