use std::collections::BTreeSet;

use serde_json::Value;
use upstream_sim::wispro::{self, DEFAULT_TOKEN, Kind, dataset};
use upstream_sim::{ErrorMode, Sim};

use crate::{CLIENTS, SEED, http, json, start};

async fn page(sim: &Sim, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = http().get(format!("{}/api/v1/clients{query}", sim.url()));
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    json(request.send().await.expect("sent")).await
}

fn pagination(body: &Value) -> (u64, u64, u64, u64) {
    let p = &body["meta"]["pagination"];
    let n = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("{k} in {body}"));
    (
        n("total_records"),
        n("total_pages"),
        n("per_page"),
        n("current_page"),
    )
}

#[tokio::test]
async fn the_pagination_envelope_counts_every_client() {
    let sim = start().await;
    let expected = dataset(CLIENTS, SEED);
    let mut served = Vec::new();
    for n in 1..=5 {
        let (status, body) =
            page(&sim, &format!("?page={n}&per_page=60"), Some(DEFAULT_TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], 200);
        assert_eq!(body["meta"]["object"], "client");
        assert_eq!(pagination(&body), (CLIENTS as u64, 5, 60, n));
        served.extend(body["data"].as_array().expect("data").iter().cloned());
    }
    assert_eq!(served.len(), CLIENTS);
    let wanted: Vec<Value> = expected
        .iter()
        .map(|c| serde_json::to_value(c).expect("serializable"))
        .collect();
    assert_eq!(served, wanted, "the pages hold the data set, in order");
    let stats = sim.wispro().stats();
    assert_eq!(
        (stats.pages_served, stats.clients_served),
        (5, CLIENTS as u64)
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_client_has_every_field_of_the_contract() {
    let sim = start().await;
    let (_, body) = page(&sim, "", Some(DEFAULT_TOKEN)).await;
    assert_eq!(pagination(&body), (CLIENTS as u64, 13, 20, 1), "defaults");
    let client = &body["data"][0];
    for field in [
        "id",
        "public_id",
        "custom_id",
        "name",
        "email",
        "address",
        "phone",
        "phone_mobile",
        "national_identification_number",
        "city",
        "state",
        "details",
        "created_at",
        "updated_at",
        "zone",
    ] {
        assert!(client.get(field).is_some(), "{field} in {client}");
    }
    assert!(uuid::Uuid::parse_str(client["id"].as_str().expect("id")).is_ok());
    assert_eq!(client["public_id"], 1001);
    for t in ["created_at", "updated_at"] {
        let text = client[t].as_str().expect("a string");
        assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{text}");
    }
    assert!(
        client["zone"]
            .as_str()
            .is_some_and(|z| z.starts_with("Zona "))
    );
    assert!(
        client.get("kind").is_none(),
        "the generator's notes are not served"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_a_401_in_the_body_at_http_200() {
    let sim = start().await;
    let bearer = format!("Bearer {DEFAULT_TOKEN}");
    for token in [None, Some("nope"), Some(bearer.as_str())] {
        let (status, body) = page(&sim, "", token).await;
        assert_eq!(status, 200, "{token:?}");
        assert_eq!(
            body,
            serde_json::json!({"status": 401, "message": "Unauthorized"})
        );
    }
    assert_eq!(sim.wispro().stats().unauthorized, 3);
    sim.wispro().set_token(service::Secret::new("other"));
    assert_eq!(page(&sim, "", Some("other")).await.1["status"], 200);
    sim.stop().await;
}

#[tokio::test]
async fn the_http_error_mode_answers_with_the_real_status() {
    let sim = start().await;
    sim.wispro().set_error_mode(ErrorMode::Http);
    let (status, body) = page(&sim, "", Some("nope")).await;
    assert_eq!((status, body["status"].as_u64()), (401, Some(401)));
    sim.wispro().force_status(Some(402));
    let (status, body) = page(&sim, "", Some(DEFAULT_TOKEN)).await;
    assert_eq!((status, body["status"].as_u64()), (402, Some(402)));
    assert_eq!(body["message"], "License expired");
    sim.wispro().force_status(None);
    sim.wispro().set_error_mode(ErrorMode::InBody);
    let (status, body) = page(&sim, "?page=zero", Some(DEFAULT_TOKEN)).await;
    assert_eq!((status, body["status"].as_u64()), (200, Some(412)));
    let (status, body) = json(
        http()
            .get(format!("{}/api/v1/plans", sim.url()))
            .header("authorization", DEFAULT_TOKEN)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["status"].as_u64()), (200, Some(404)));
    sim.stop().await;
}

#[tokio::test]
async fn per_page_is_cut_to_a_thousand() {
    let sim = start().await;
    sim.wispro().set_dataset(1500, 3);
    let (_, body) = page(&sim, "?per_page=5000", Some(DEFAULT_TOKEN)).await;
    assert_eq!(pagination(&body), (1500, 2, 1000, 1));
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1000));
    let (_, body) = page(&sim, "?per_page=5000&page=2", Some(DEFAULT_TOKEN)).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(500));
    sim.stop().await;
}

#[tokio::test]
async fn a_page_past_the_end_is_empty_with_the_same_pagination() {
    let sim = start().await;
    let (status, body) = page(&sim, "?page=99&per_page=100", Some(DEFAULT_TOKEN)).await;
    assert_eq!((status, body["status"].as_u64()), (200, Some(200)));
    assert_eq!(pagination(&body), (CLIENTS as u64, 3, 100, 99));
    assert_eq!(body["data"], serde_json::json!([]));
    sim.stop().await;
}

#[tokio::test]
async fn the_data_set_has_every_id_form_and_is_deterministic_for_a_seed() {
    let clients = dataset(1000, 11);
    assert_eq!(clients, dataset(1000, 11));
    let kinds: BTreeSet<Kind> = clients.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, Kind::ALL.into_iter().collect());
    let ids: Vec<&str> = clients
        .iter()
        .filter_map(|c| c.national_identification_number.as_deref())
        .collect();
    let has = |p: &dyn Fn(&str) -> bool| ids.iter().any(|id| p(id));
    assert!(has(
        &|id| id.len() >= 7 && id.chars().all(|c| c.is_ascii_digit())
    ));
    assert!(has(&|id| id.starts_with("V-")
        && !id.contains('.')
        && id.len() > 4));
    assert!(has(&|id| id.starts_with("E-")));
    assert!(has(&|id| id.contains('.') && !id.starts_with("V-")));
    assert!(has(&|id| id.starts_with("V-") && id.contains('.')));
    assert!(has(&|id| id.trim().contains(' ') || id.starts_with(' ')));
    assert!(has(&|id| id.trim().is_empty()));
    assert!(
        clients
            .iter()
            .any(|c| c.national_identification_number.is_none())
    );
    assert!(has(&|id| ["N/A", "V-"].contains(&id)) || kinds.contains(&Kind::GarbageId));
    let duplicate = clients
        .iter()
        .find(|c| c.kind == Kind::DuplicateId)
        .expect("a duplicate");
    let same: Vec<_> = clients
        .iter()
        .filter(|c| c.national_identification_number == duplicate.national_identification_number)
        .collect();
    assert_eq!(same.len(), 2);
    // Served over HTTP after regenerating with the same size and seed: the same clients.
    let sim = start().await;
    let (status, info) = json(
        http()
            .post(format!("{}/_sim/wispro/dataset", sim.url()))
            .json(&serde_json::json!({"size": 1000, "seed": 11}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, info["size"].as_u64()), (200, Some(1000)));
    assert_eq!(
        info["kinds"]["duplicate_id"].as_u64(),
        Some(wispro::kind_counts(&clients)[&Kind::DuplicateId] as u64)
    );
    let (_, body) = page(&sim, "?per_page=1000", Some(DEFAULT_TOKEN)).await;
    let served = body["data"].as_array().expect("data");
    assert_eq!(served[999]["id"].as_str(), Some(clients[999].id.as_str()));
    sim.stop().await;
}

#[tokio::test]
async fn a_failing_page_fails_as_often_as_told() {
    let sim = start().await;
    sim.wispro().fail_page(2, Some(2));
    let query = "?page=2&per_page=100";
    for _ in 0..2 {
        let (status, body) = page(&sim, query, Some(DEFAULT_TOKEN)).await;
        assert_eq!((status, body["status"].as_u64()), (200, Some(500)));
    }
    let (_, body) = page(&sim, query, Some(DEFAULT_TOKEN)).await;
    assert_eq!(body["status"], 200);
    assert_eq!(
        page(&sim, "?page=1", Some(DEFAULT_TOKEN)).await.1["status"],
        200
    );
    let stats = sim.wispro().stats();
    assert_eq!((stats.page_requests[&2], stats.errors), (3, 2));
    sim.wispro().fail_next(1);
    assert_eq!(page(&sim, "", Some(DEFAULT_TOKEN)).await.1["status"], 500);
    assert_eq!(page(&sim, "", Some(DEFAULT_TOKEN)).await.1["status"], 200);
    sim.stop().await;
}

#[tokio::test]
async fn an_empty_page_keeps_its_pagination_as_often_as_told() {
    let sim = start().await;
    sim.wispro().empty_page(2, Some(1));
    let query = "?page=2&per_page=100";
    let (_, body) = page(&sim, query, Some(DEFAULT_TOKEN)).await;
    assert_eq!(body["status"], 200);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0));
    assert_eq!(pagination(&body), (CLIENTS as u64, 3, 100, 2));
    let (_, body) = page(&sim, query, Some(DEFAULT_TOKEN)).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(100));
    sim.stop().await;
}

#[tokio::test]
async fn clients_inserted_at_the_front_after_a_page_shift_the_pages_that_follow() {
    let sim = start().await;
    let before = sim.wispro().clients();
    sim.wispro().insert_front_after(1, 30);
    let (_, first) = page(&sim, "?page=1&per_page=100", Some(DEFAULT_TOKEN)).await;
    assert_eq!(
        pagination(&first).0,
        CLIENTS as u64,
        "page 1 answers before the insertion"
    );
    assert_eq!(first["data"][0]["id"].as_str(), Some(before[0].id.as_str()));
    let (_, second) = page(&sim, "?page=2&per_page=100", Some(DEFAULT_TOKEN)).await;
    assert_eq!(pagination(&second).0, CLIENTS as u64 + 30);
    // Page 2 now starts 30 clients earlier in the old order: 70 to 169.
    assert_eq!(
        second["data"][0]["id"].as_str(),
        Some(before[70].id.as_str())
    );
    let after = sim.wispro().clients();
    assert_eq!(after.len(), CLIENTS + 30);
    assert_eq!(after[30].id, before[0].id);
    let largest = before.iter().map(|c| c.public_id).max().expect("clients");
    assert!(after[..30].iter().all(|c| c.public_id > largest));
    // Once: page 1 again inserts nothing more.
    page(&sim, "?page=1&per_page=100", Some(DEFAULT_TOKEN)).await;
    assert_eq!(sim.wispro().clients().len(), CLIENTS + 30);
    assert_eq!(sim.wispro().knobs().insert_front, None);
    sim.stop().await;
}
