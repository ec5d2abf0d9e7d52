//! The lists (`GET /api/persons`, `/api/companies`, `/api/payments`,
//! `/api/users`, `/api/photo-batches/{id}/photos`): paging through every row
//! once in order, rows created between pages neither shifting nor repeating,
//! each filter, and a bad `limit`, `cursor` or filter answered 400 naming it.
//! Rows are written through `store`, as the workers write them.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use store::companies::{self, ContextStatus};
use store::payments::{self, Currency, NewPayment, PaymentStatus};
use store::persons::{self, NewPerson};
use store::photos::{self, Completed, Detection, NewPhoto};
use store::users::{self, CustomerData};

use crate::helpers::{ADMIN_TOKEN, TestApp, USER_TOKEN, assert_error, assert_unauthorized};

async fn add_person(app: &TestApp, n: usize) -> i64 {
    let document = format!("V-{n:08}");
    let mut conn = app.db().pool.acquire().await.expect("conn");
    persons::insert(
        &mut conn,
        &NewPerson {
            document: &document,
            first_name: "Ana",
            last_name: "Pérez",
            email: None,
            qr_content: &document,
            qr_path: &format!("qr/{document}.png"),
        },
    )
    .await
    .expect("insert")
    .id
}

async fn add_payment(app: &TestApp, n: usize, status: PaymentStatus) -> i64 {
    let mut conn = app.db().pool.acquire().await.expect("conn");
    payments::insert(
        &mut conn,
        &NewPayment {
            qr_id: &format!("qr-list-{n}"),
            amount_cents: 12_550,
            currency: Currency::Bob,
            description: "Pedido",
            status,
            qr_image_base64: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
            expires_at: Utc::now() + Duration::minutes(15),
            next_check_at: Some(Utc::now()),
        },
    )
    .await
    .expect("insert")
    .id
}

async fn add_user(app: &TestApp, wispro: &str, id_number: Option<&str>) -> i64 {
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let data = CustomerData {
        name: "Ana Pérez",
        id_number,
        id_wispro: wispro,
        ..Default::default()
    };
    users::insert(&mut conn, &data, "$2y$10$not-a-real-hash")
        .await
        .expect("insert")
        .id
}

fn ids(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

/// One page of `path` (which has its `?` already) with `token`: its items
/// and its `next_cursor`.
async fn page(app: &TestApp, token: &str, path: &str) -> (Vec<Value>, Option<String>) {
    let res = app.get(token, path).await;
    assert_eq!(res.status(), 200, "{path}");
    let body: Value = res.json().await.expect("json");
    let items = body["items"].as_array().expect("items").clone();
    let next = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(c) => Some(c.clone()),
        other => panic!("next_cursor is a string or null: {other}"),
    };
    (items, next)
}

/// Every item of `path` (with its `?`), `limit` per page: the pages' items
/// in order, and how many pages it took.
async fn every_page(app: &TestApp, token: &str, path: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1..=1000 {
        let mut url = format!("{path}&limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (items, next) = page(app, token, &url).await;
        assert!(items.len() <= limit, "{url}: {} items", items.len());
        all.extend(items);
        match next {
            Some(next) => cursor = Some(next),
            None => return (all, pages),
        }
    }
    panic!("{path} did not end within 1000 pages")
}

#[tokio::test]
async fn paging_through_persons_returns_each_once_newest_first_and_filters_by_qr_status() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for n in 0..7 {
        created.push(add_person(&app, n).await);
    }
    let mut conn = app.db().pool.acquire().await.expect("conn");
    persons::mark_qr_ready(&mut conn, created[1])
        .await
        .expect("ready");
    persons::mark_qr_ready(&mut conn, created[4])
        .await
        .expect("ready");
    persons::mark_qr_failed(&mut conn, created[5], "disk full")
        .await
        .expect("failed");
    drop(conn);

    let (all, pages) = every_page(&app, USER_TOKEN, "/api/persons?", 3).await;
    let newest_first: Vec<i64> = created.iter().rev().copied().collect();
    assert_eq!(ids(&all), newest_first);
    assert_eq!(pages, 3, "3 + 3 + 1");
    assert_eq!(all[0]["document"], "V-00000006");
    assert_eq!(all[0]["qr_status"], "pending");

    let (ready, _) = every_page(&app, USER_TOKEN, "/api/persons?qr_status=ready", 1).await;
    assert_eq!(ids(&ready), [created[4], created[1]]);
    let (failed, _) = every_page(&app, USER_TOKEN, "/api/persons?qr_status=failed", 50).await;
    assert_eq!(ids(&failed), [created[5]]);
    assert_eq!(failed[0]["qr_error"], "disk full");
    let (pending, _) = every_page(&app, USER_TOKEN, "/api/persons?qr_status=pending", 2).await;
    assert_eq!(
        ids(&pending),
        [created[6], created[3], created[2], created[0]]
    );

    // The default page is 50.
    let (items, next) = page(&app, USER_TOKEN, "/api/persons").await;
    assert_eq!((items.len(), next), (7, None));
    app.cleanup().await;
}

#[tokio::test]
async fn rows_created_between_pages_neither_shift_nor_repeat_the_later_pages() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for n in 0..6 {
        created.push(add_payment(&app, n, PaymentStatus::Pending).await);
    }
    let (first, cursor) = page(&app, USER_TOKEN, "/api/payments?limit=2").await;
    assert_eq!(ids(&first), [created[5], created[4]]);
    // Two payments arrive while the client reads on.
    let late = [
        add_payment(&app, 100, PaymentStatus::Pending).await,
        add_payment(&app, 101, PaymentStatus::Pending).await,
    ];
    let cursor = cursor.expect("a second page");
    let (second, cursor) = page(
        &app,
        USER_TOKEN,
        &format!("/api/payments?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&second), [created[3], created[2]]);
    let cursor = cursor.expect("a third page");
    let (third, cursor) = page(
        &app,
        USER_TOKEN,
        &format!("/api/payments?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&third), [created[1], created[0]]);
    assert_eq!(cursor, None, "the oldest row ends the last page");
    // A new first page starts with them.
    let (head, _) = page(&app, USER_TOKEN, "/api/payments?limit=2").await;
    assert_eq!(ids(&head), [late[1], late[0]]);
    app.cleanup().await;
}

#[tokio::test]
async fn a_company_just_created_heads_the_first_page_and_companies_filter_by_context_status() {
    let app = TestApp::spawn().await;
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let skipped = companies::insert(&mut conn, "Old Co", "short", ContextStatus::Skipped)
        .await
        .expect("insert")
        .id;
    let failed = companies::insert(&mut conn, "Bad Co", "long text", ContextStatus::Pending)
        .await
        .expect("insert")
        .id;
    companies::mark_failed(&mut conn, failed, "llm down")
        .await
        .expect("failed");
    drop(conn);

    let res = app
        .post_company(
            Some(USER_TOKEN),
            json!({"name": "New Co", "context": "brief"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let new: Value = res.json().await.expect("json");

    let (items, next) = page(&app, USER_TOKEN, "/api/companies").await;
    assert_eq!(items[0]["id"], new["id"], "the new company comes first");
    assert_eq!(items[0]["name"], "New Co");
    assert_eq!(ids(&items)[1..], [failed, skipped]);
    assert_eq!(next, None);

    let (only_failed, _) = page(&app, USER_TOKEN, "/api/companies?context_status=failed").await;
    assert_eq!(ids(&only_failed), [failed]);
    assert_eq!(only_failed[0]["context_error"], "llm down");
    let (none, _) = page(&app, USER_TOKEN, "/api/companies?context_status=processed").await;
    assert!(none.is_empty(), "{none:?}");
    app.cleanup().await;
}

#[tokio::test]
async fn payments_filter_by_status_and_operator_flag_and_never_carry_the_image() {
    let app = TestApp::spawn().await;
    let pending = add_payment(&app, 1, PaymentStatus::Pending).await;
    let flagged = add_payment(&app, 2, PaymentStatus::Active).await;
    let paid = add_payment(&app, 3, PaymentStatus::Completed).await;
    sqlx::query(
        "UPDATE payments SET needs_operator = true, operator_reason = 'check limit' WHERE id = $1",
    )
    .bind(flagged)
    .execute(&app.db().pool)
    .await
    .expect("flag");

    let (all, _) = page(&app, USER_TOKEN, "/api/payments").await;
    assert_eq!(ids(&all), [paid, flagged, pending]);
    for item in &all {
        let text = item.to_string();
        assert!(!text.contains("iVBORw0KGgo"), "no image in a list: {text}");
        assert!(item.get("qr_image").is_none(), "{text}");
    }
    assert_eq!(all[0]["amount"], "125.50");
    assert_eq!(all[0]["currency"], "BOB");
    assert_eq!(all[0]["status"], "completed");
    assert_eq!(all[0]["qr_id"], "qr-list-3");

    let filtered = async |query: &str| {
        ids(&page(&app, USER_TOKEN, &format!("/api/payments?{query}"))
            .await
            .0)
    };
    assert_eq!(filtered("needs_operator=true").await, [flagged]);
    assert_eq!(filtered("needs_operator=false").await, [paid, pending]);
    assert_eq!(filtered("status=pending").await, [pending]);
    assert_eq!(
        filtered("status=active&needs_operator=true").await,
        [flagged]
    );
    assert_eq!(
        filtered("status=active&needs_operator=false").await,
        Vec::<i64>::new()
    );
    assert_eq!(filtered("status=expired").await, Vec::<i64>::new());
    let (flag, _) = page(&app, USER_TOKEN, "/api/payments?needs_operator=true").await;
    assert_eq!(flag[0]["operator_reason"], "check limit");
    assert_eq!(flag[0]["needs_operator"], true);
    app.cleanup().await;
}

#[tokio::test]
async fn users_are_found_by_identity_number_as_the_sync_matches_it_or_by_wispro_id() {
    let app = TestApp::spawn().await;
    let v = add_user(&app, "w-v", Some("V-12.345.678")).await;
    let bare = add_user(&app, "w-bare", Some("012345678")).await;
    let company = add_user(&app, "w-j", Some("J-12345678")).await;
    let suffix = add_user(&app, "w-suffix", Some("2345678")).await;
    let none = add_user(&app, "w-none", None).await;

    let (all, _) = page(&app, ADMIN_TOKEN, "/api/users").await;
    assert_eq!(ids(&all), [none, suffix, company, bare, v]);
    assert!(all.iter().all(|u| u.get("password").is_none()), "{all:?}");
    assert_eq!(all[4]["id_number_key"], "V12345678");
    assert_eq!(all[4]["wispro_id"], "w-v");

    let by = async |query: &str| {
        ids(&page(&app, ADMIN_TOKEN, &format!("/api/users?{query}"))
            .await
            .0)
    };
    // Dotted, lower-case, zero-padded: one number; its bare form is the same person.
    assert_eq!(by("id_number=v%2012.345.678").await, [bare, v]);
    assert_eq!(by("id_number=012345678").await, [bare, v]);
    // A company's number is its own; digits are compared whole.
    assert_eq!(by("id_number=J-12.345.678").await, [company]);
    assert_eq!(by("id_number=2345678").await, [suffix]);
    assert_eq!(by("wispro_id=w-bare").await, [bare]);
    assert_eq!(by("wispro_id=w-bare&id_number=V12345678").await, [bare]);
    assert_eq!(
        by("wispro_id=w-j&id_number=V12345678").await,
        Vec::<i64>::new()
    );
    assert_eq!(by("wispro_id=unknown").await, Vec::<i64>::new());

    // Paged like the others, the cursor holding the number's filter.
    let (two, pages) = every_page(&app, ADMIN_TOKEN, "/api/users?id_number=12345678", 1).await;
    assert_eq!((ids(&two), pages), (vec![bare, v], 2));
    app.cleanup().await;
}

#[tokio::test]
async fn a_batch_lists_its_photos_in_upload_order_with_their_bibs_and_filters_by_status() {
    let app = TestApp::spawn().await;
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let new = |name| NewPhoto {
        original_name: Some(name),
        content_type: Some("image/jpeg"),
        storage_path: Some("photos/x.jpg"),
        ..Default::default()
    };
    let (batch, stored) =
        photos::insert_batch(&mut conn, &[new("a.jpg"), new("b.jpg"), new("c.jpg")])
            .await
            .expect("insert");
    let (other, _) = photos::insert_batch(&mut conn, &[new("other.jpg")])
        .await
        .expect("insert");
    let detection = |number: &str, confidence| Detection {
        number: number.into(),
        confidence,
        box_x: 1,
        box_y: 2,
        box_width: 3,
        box_height: 4,
    };
    photos::start_processing(&mut conn, stored[1].id, false)
        .await
        .expect("start");
    let done = Completed {
        thumbnail_path: "thumbs/b.jpg",
        width: 640,
        height: 480,
        detections: &[detection("87", 0.5), detection("1234", 0.9)],
    };
    assert!(
        photos::complete(&mut conn, stored[1].id, &done)
            .await
            .expect("complete")
    );
    photos::mark_failed(&mut conn, stored[2].id, "not a photo")
        .await
        .expect("failed");
    drop(conn);

    let path = format!("/api/photo-batches/{}/photos?", batch.id);
    let (all, pages) = every_page(&app, USER_TOKEN, &path, 2).await;
    assert_eq!(ids(&all), stored.iter().map(|p| p.id).collect::<Vec<_>>());
    assert_eq!(pages, 2);
    assert_eq!(all[0]["status"], "pending");
    assert_eq!(
        (all[0]["detections"].as_u64(), &all[0]["numbers"]),
        (Some(0), &json!([]))
    );
    assert_eq!(all[1]["status"], "completed");
    assert_eq!(all[1]["detections"], 2);
    assert_eq!(
        all[1]["numbers"],
        json!(["1234", "87"]),
        "most confident first"
    );
    assert_eq!(
        all[1]["thumbnail_url"],
        format!("/api/photos/{}/thumbnail", stored[1].id)
    );
    assert_eq!(all[2]["error"], "not a photo");

    let (failed, _) = page(&app, USER_TOKEN, &format!("{path}status=failed")).await;
    assert_eq!(ids(&failed), [stored[2].id]);
    let (others, _) = page(
        &app,
        USER_TOKEN,
        &format!("/api/photo-batches/{}/photos", other.id),
    )
    .await;
    assert_eq!(others.len(), 1);

    let res = app
        .get(USER_TOKEN, "/api/photo-batches/999999999/photos")
        .await;
    assert_error(res, 404, "not_found").await;
    app.cleanup().await;
}

/// Checks a 400 `invalid_parameter` naming `field`; its message.
async fn assert_bad(app: &TestApp, token: &str, path: &str, field: &str) -> String {
    let body = assert_error(app.get(token, path).await, 400, "invalid_parameter").await;
    assert_eq!(body["field"], field, "{path}: {body}");
    body["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn a_bad_limit_cursor_or_filter_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        add_person(&app, n).await;
    }
    for limit in ["0", "201", "-5", "ten", ""] {
        let message = assert_bad(
            &app,
            USER_TOKEN,
            &format!("/api/persons?limit={limit}"),
            "limit",
        )
        .await;
        assert!(message.contains("1 to 200"), "{message}");
    }
    let (_, cursor) = page(&app, USER_TOKEN, "/api/persons?limit=1").await;
    let cursor = cursor.expect("a cursor");
    // Edited, cut, garbage, or used with another filter or list.
    let mut edited = cursor.clone().into_bytes();
    edited[5] = if edited[5] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).expect("ascii");
    for bad in [
        format!("/api/persons?cursor={edited}"),
        format!("/api/persons?cursor={}", &cursor[..cursor.len() - 1]),
        "/api/persons?cursor=%F0%9F%92%A9".to_owned(),
        format!("/api/persons?qr_status=ready&cursor={cursor}"),
        format!("/api/companies?cursor={cursor}"),
    ] {
        assert_bad(&app, USER_TOKEN, &bad, "cursor").await;
    }
    let message = assert_bad(&app, USER_TOKEN, "/api/persons?qr_status=done", "qr_status").await;
    assert!(message.contains("pending, ready, failed"), "{message}");
    let message = assert_bad(
        &app,
        USER_TOKEN,
        "/api/companies?context_status=x",
        "context_status",
    )
    .await;
    assert!(
        message.contains("pending, skipped, processed, failed"),
        "{message}"
    );
    let message = assert_bad(&app, USER_TOKEN, "/api/payments?status=paid", "status").await;
    assert!(
        message.contains("pending, processing, active, completed, cancelled, expired"),
        "{message}"
    );
    assert_bad(
        &app,
        USER_TOKEN,
        "/api/payments?needs_operator=yes",
        "needs_operator",
    )
    .await;
    assert_bad(
        &app,
        USER_TOKEN,
        "/api/photo-batches/1/photos?status=done",
        "status",
    )
    .await;
    for number in ["N%2FA", "V-", "1234", "12345678901"] {
        assert_bad(
            &app,
            ADMIN_TOKEN,
            &format!("/api/users?id_number={number}"),
            "id_number",
        )
        .await;
    }
    assert_bad(&app, ADMIN_TOKEN, "/api/users?wispro_id=", "wispro_id").await;
    app.cleanup().await;
}

#[tokio::test]
async fn every_list_needs_a_key_and_the_users_an_admin() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/persons",
        "/api/companies",
        "/api/payments",
        "/api/users",
        "/api/photo-batches/1/photos",
    ] {
        assert_unauthorized(app.get_anonymous(path).await).await;
    }
    assert_error(app.get(USER_TOKEN, "/api/users").await, 403, "forbidden").await;
    // The POST routes of the same paths still answer.
    let res = app
        .post_person(
            Some(USER_TOKEN),
            json!({"document": "V-7654321", "first_name": "A", "last_name": "B"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    app.cleanup().await;
}
