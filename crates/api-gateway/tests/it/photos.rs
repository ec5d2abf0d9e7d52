//! Race photos through the gateway, processed by a real photo-worker: upload,
//! status moves, detections, search by bib, batch progress, and the size, type
//! and URL limits.

use photo_worker::testing::{bib_photo_jpeg, bib_photo_png};
use queue_core::testing::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service::testing::{Running, TableLock};

use crate::helpers::{TestApp, USER_TOKEN};

/// A multipart body of `(part name, file name, bytes)` parts and its content type.
fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "photo-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(app: &TestApp, parts: &[(&str, &str, &[u8])]) -> reqwest::Response {
    let (content_type, body) = multipart(parts);
    app.post_raw("/api/photos", &content_type, body).await
}

async fn post_urls(app: &TestApp, urls: Value) -> reqwest::Response {
    post_json(app, json!({ "urls": urls }).to_string()).await
}

/// POSTs `body` to `/api/photos` as JSON, exactly as written.
async fn post_json(app: &TestApp, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.post_raw("/api/photos", "application/json", body).await
}

/// Asserts that an error body's message names `needle` (a limit, a file).
fn assert_message_names(body: &Value, needle: &str) {
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains(needle)),
        "{needle}: {body}"
    );
}

async fn json_of(app: &TestApp, path: &str) -> Value {
    let res = app.get(USER_TOKEN, path).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.expect("json")
}

async fn status_until(app: &TestApp, id: i64, status: &str) -> Value {
    eventually(&format!("photo {id} is {status}"), async || {
        let s = json_of(app, &format!("/api/photos/{id}/status")).await;
        (s["status"] == status).then_some(s)
    })
    .await
}

async fn start_photo_worker(
    app: &TestApp,
    tweak: impl FnOnce(&mut photo_worker::Config),
) -> Running {
    let mut config =
        photo_worker::testing::config(&app.redis.prefix, &app.db().url, app.storage.path());
    tweak(&mut config);
    photo_worker::testing::spawn(config).await
}

async fn photo_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM photos")
        .fetch_one(&app.db().pool)
        .await
        .expect("count")
}

fn ids_of(accepted: &Value) -> Vec<i64> {
    accepted["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_i64().expect("an id"))
        .collect()
}

/// The files under `dir` of the storage (none when it does not exist).
fn files_in(app: &TestApp, dir: &str) -> Vec<String> {
    std::fs::read_dir(app.storage.path().join(dir))
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn uploaded_photos_are_accepted_at_once_then_move_pending_processing_completed_with_their_bibs()
 {
    let app = TestApp::spawn().await;
    let first = bib_photo_jpeg(&["1234"]);
    let second = bib_photo_png(&["507", "1234"]);
    let res = upload(
        &app,
        &[
            ("files", "finish-1.jpg", &first),
            ("files", "finish-2.png", &second),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let accepted: Value = res.json().await.expect("json");
    let batch_id = accepted["batch_id"].as_i64().expect("batch_id");
    assert_eq!(location, format!("/api/photo-batches/{batch_id}"));
    let ids = ids_of(&accepted);
    assert_eq!(ids.len(), 2);
    assert_eq!(
        files_in(&app, "photos").len(),
        2,
        "both originals are stored"
    );

    // No worker yet: pending, and so is the batch.
    let pending = json_of(&app, &format!("/api/photos/{}/status", ids[0])).await;
    assert_eq!(
        pending,
        json!({"id": ids[0], "status": "pending", "error": null, "is_processed": false, "processed_at": null})
    );
    let batch = json_of(&app, &location).await;
    assert_eq!(
        (&batch["total"], &batch["pending"], &batch["done"]),
        (&json!(2), &json!(2), &json!(false))
    );

    // Hold the detections table so `processing` is seen for sure, not by luck.
    let lock = TableLock::new(&app.db().url, "photo_detections").await;
    let worker = start_photo_worker(&app, |_| {}).await;
    status_until(&app, ids[0], "processing").await;
    let batch = eventually("the batch shows both photos processing", async || {
        let b = json_of(&app, &location).await;
        (b["processing"] == 2).then_some(b)
    })
    .await;
    assert_eq!(batch["pending"], 0);
    lock.release().await;

    for id in &ids {
        let done = status_until(&app, *id, "completed").await;
        assert_eq!(done["is_processed"], true);
        assert_eq!(done["error"], Value::Null);
        assert!(done["processed_at"].is_string(), "{done}");
    }
    let photo = json_of(&app, &format!("/api/photos/{}", ids[1])).await;
    let mut numbers: Vec<&str> = photo["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .map(|d| d["number"].as_str().expect("number"))
        .collect();
    numbers.sort();
    assert_eq!(numbers, vec!["1234", "507"]);
    let detection = &photo["detections"][0];
    assert!(
        detection["confidence"]
            .as_f64()
            .is_some_and(|c| (0.5..=1.0).contains(&c)),
        "{photo}"
    );
    assert!(
        detection["box"]["width"].as_i64().is_some_and(|w| w > 0),
        "{photo}"
    );
    assert_eq!(photo["original_name"], "finish-2.png");
    assert_eq!(photo["batch_id"], batch_id);

    let found = json_of(&app, "/api/photos?bib=1234").await;
    assert_eq!(found["bib"], "1234");
    let mut found_ids: Vec<i64> = found["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect();
    found_ids.sort();
    assert_eq!(found_ids, ids);
    let hit = &found["photos"][0];
    assert!(
        hit["confidence"].as_f64().is_some_and(|c| c >= 0.5),
        "{found}"
    );
    let thumb_url = hit["thumbnail_url"].as_str().expect("a thumbnail url");
    let thumb = app.get(USER_TOKEN, thumb_url).await;
    assert_eq!(thumb.status(), StatusCode::OK);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&thumb.bytes().await.expect("bytes")).expect("a JPEG");
    assert_eq!(thumb.width().max(thumb.height()), 320);
    let only_507 = json_of(&app, "/api/photos?bib=507").await;
    assert_eq!(only_507["photos"].as_array().map(Vec::len), Some(1));
    assert_eq!(only_507["photos"][0]["id"], ids[1]);
    assert_eq!(
        json_of(&app, "/api/photos?bib=999").await["photos"],
        json!([])
    );

    let batch = json_of(&app, &location).await;
    assert_eq!(
        (
            &batch["total"],
            &batch["completed"],
            &batch["failed"],
            &batch["done"]
        ),
        (&json!(2), &json!(2), &json!(0), &json!(true))
    );
    worker.stop().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_corrupt_photo_ends_failed_with_a_readable_error_while_the_rest_of_the_batch_completes() {
    let app = TestApp::spawn().await;
    let worker = start_photo_worker(&app, |_| {}).await;
    // A JPEG's signature, then bytes no decoder can read.
    let mut corrupt = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    corrupt.extend_from_slice(&[0x5A; 4000]);
    let good = bib_photo_png(&["4521"]);
    let res = upload(
        &app,
        &[("files", "bad.jpg", &corrupt), ("files", "good.png", &good)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.expect("json");
    let ids = ids_of(&accepted);

    let failed = status_until(&app, ids[0], "failed").await;
    let error = failed["error"].as_str().expect("an error");
    assert!(error.starts_with("not a decodable image: "), "{error}");
    assert_eq!(failed["is_processed"], false);
    status_until(&app, ids[1], "completed").await;
    let batch = json_of(
        &app,
        &format!("/api/photo-batches/{}", accepted["batch_id"]),
    )
    .await;
    assert_eq!(
        (&batch["completed"], &batch["failed"], &batch["done"]),
        (&json!(1), &json!(1), &json!(true))
    );
    let photo = json_of(&app, &format!("/api/photos/{}", ids[0])).await;
    assert_eq!(
        (&photo["detections"], &photo["thumbnail_url"]),
        (&json!([]), &Value::Null)
    );
    let thumb = app
        .get(USER_TOKEN, &format!("/api/photos/{}/thumbnail", ids[0]))
        .await;
    assert_eq!(thumb.status(), StatusCode::NOT_FOUND);
    worker.stop().await;
    app.cleanup().await;
}

#[tokio::test]
async fn uploads_over_the_file_or_request_limit_are_413_naming_the_limit_and_leave_no_file() {
    let app = TestApp::spawn_with(|c| {
        c.photos.max_file_bytes = 60_000.try_into().expect("nonzero");
        c.photos.max_request_bytes = 150_000.try_into().expect("nonzero");
    })
    .await;
    let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
    big.resize(70_000, 0);
    let res = upload(&app, &[("files", "huge.png", &big)]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "payload_too_large");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("huge.png") && message.contains("PHOTO_MAX_FILE_BYTES (60000 bytes)"),
        "{message}"
    );

    let mut part = b"\x89PNG\r\n\x1a\n".to_vec();
    part.resize(55_000, 0);
    let res = upload(
        &app,
        &[
            ("files", "a.png", &part),
            ("files", "b.png", &part),
            ("files", "c.png", &part),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.expect("json");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("PHOTO_MAX_REQUEST_BYTES (150000 bytes)"),
        "{message}"
    );
    assert!(
        files_in(&app, "photos").is_empty(),
        "the files of a refused upload are removed"
    );
    assert_eq!(photo_count(&app).await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_file_that_is_not_jpeg_or_png_and_a_body_of_another_type_are_415() {
    let app = TestApp::spawn().await;
    let good = bib_photo_png(&["1234"]);
    let res = upload(
        &app,
        &[
            ("files", "ok.png", &good),
            ("files", "anim.gif", b"GIF89a\x01\x00\x01\x00"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "unsupported_media_type");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("anim.gif") && message.contains("image/jpeg and image/png"),
        "{message}"
    );
    assert!(
        files_in(&app, "photos").is_empty(),
        "the PNG before it is removed too"
    );

    let res = app
        .post_raw("/api/photos", "image/jpeg", bib_photo_jpeg(&["1"]))
        .await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let res = upload(&app, &[("photo", "a.png", &good)]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["field"], "photo");
    let res = upload(&app, &[]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unauthenticated = app
        .client
        .post(app.url("/api/photos"))
        .json(&json!({"urls": []}))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn urls_to_hosts_not_allowed_or_to_inside_addresses_are_refused_up_front_with_422() {
    let off = TestApp::spawn().await;
    let res = post_urls(&off, json!(["https://photos.example.com/a.jpg"])).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["field"], "urls");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("PHOTO_FETCH_ALLOWED_HOSTS")),
        "{body}"
    );
    off.cleanup().await;

    let app = TestApp::spawn_with(|c| {
        c.photos.fetch_allowed_hosts = "photos.example.com, 127.0.0.1, 169.254.169.254, ::1"
            .parse()
            .expect("hosts");
    })
    .await;
    for url in [
        "http://127.0.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/a.jpg",
        "file:///etc/passwd",
        "https://user:pw@photos.example.com/a.jpg",
        // An allowed host on a port its entry does not name (its Redis, say).
        "http://photos.example.com:6379/a.jpg",
        "http://[::ffff:0:a9fe:a9fe]/a.jpg",
    ] {
        let res = post_urls(&app, json!(["https://photos.example.com/ok.jpg", url])).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["field"], "urls[1]", "{url}: {body}");
    }
    assert_eq!(photo_count(&app).await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn an_allowed_url_whose_host_resolves_to_loopback_is_accepted_then_failed_by_the_worker() {
    let app = TestApp::spawn_with(|c| {
        c.photos.fetch_allowed_hosts = "localhost:9".parse().expect("hosts");
    })
    .await;
    let worker = start_photo_worker(&app, |c| {
        c.fetch.allowed_hosts = "localhost:9".parse().expect("hosts");
    })
    .await;
    let res = post_urls(&app, json!(["http://localhost:9/race/0001.jpg"])).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let accepted: Value = res.json().await.expect("json");
    let id = ids_of(&accepted)[0];
    let photo = json_of(&app, &format!("/api/photos/{id}")).await;
    assert_eq!(photo["source_url"], "http://localhost:9/race/0001.jpg");
    let failed = status_until(&app, id, "failed").await;
    let error = failed["error"].as_str().expect("a reason");
    assert!(
        error.contains("localhost resolves to") && error.contains("loopback"),
        "{error}"
    );
    let photo = json_of(&app, &format!("/api/photos/{id}")).await;
    assert_eq!(photo["attempts"], 1, "a refusal is not retried");
    worker.stop().await;
    app.cleanup().await;
}

#[tokio::test]
async fn search_needs_a_bib_of_digits_and_unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    for query in [
        "",
        "?bib=",
        "?bib=12a4",
        "?bib=123456789",
        "?bib=12&limit=0",
        "?bib=12&limit=501",
    ] {
        let res = app.get(USER_TOKEN, &format!("/api/photos{query}")).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let body: Value = res.json().await.expect("json");
        let field = if query.contains("limit") {
            "limit"
        } else {
            "bib"
        };
        assert_eq!(body["field"], field, "{query}");
    }
    for path in [
        "/api/photos/999",
        "/api/photos/999/status",
        "/api/photos/999/thumbnail",
        "/api/photo-batches/999",
    ] {
        let res = app.get(USER_TOKEN, path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let res = app.get(USER_TOKEN, "/api/photos/abc/status").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // A bad limit that does not parse is the query's 400.
    let res = app.get(USER_TOKEN, "/api/photos?bib=1&limit=x").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    app.cleanup().await;
}

#[tokio::test]
async fn a_client_that_hangs_up_midway_through_an_upload_leaves_no_file_and_no_photo() {
    let app = TestApp::spawn().await;
    let whole = bib_photo_png(&["1234"]);
    let (content_type, body) = multipart(&[("files", "a.png", &whole), ("files", "b.png", &whole)]);
    // The first file whole, the second cut short, then the connection closes.
    let stream = partial_upload(&app, &content_type, &body, body.len() - whole.len() / 2).await;
    // The first file reaches storage before the request is cut off.
    eventually("the first file is stored", async || {
        (!files_in(&app, "photos").is_empty()).then_some(())
    })
    .await;
    drop(stream);
    eventually("the stored file is removed", async || {
        files_in(&app, "photos").is_empty().then_some(())
    })
    .await;
    assert_eq!(photo_count(&app).await, 0);
    app.cleanup().await;
}

/// The temporary files (`.NAME.<hex>.tmp`) under `dir` of the storage, with their sizes.
fn temp_files_in(app: &TestApp, dir: &str) -> Vec<(String, u64)> {
    std::fs::read_dir(app.storage.path().join(dir))
        .map(|entries| {
            entries
                .map(|e| e.expect("entry"))
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let len = e.metadata().ok()?.len();
                    (name.starts_with('.') && name.ends_with(".tmp")).then_some((name, len))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sends the head of a multipart upload of one `size`-byte PNG and the first
/// `sent` bytes of its body, and keeps the connection open (the upload stalls
/// there until the stream is dropped).
async fn stalled_upload(app: &TestApp, size: usize, sent: usize) -> tokio::net::TcpStream {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(size, 0);
    let (content_type, body) = multipart(&[("files", "big.png", &png)]);
    partial_upload(app, &content_type, &body, sent).await
}

/// Sends the head of an upload of `body` and its first `sent` bytes, and keeps
/// the connection open (until the stream is dropped).
async fn partial_upload(
    app: &TestApp,
    content_type: &str,
    body: &[u8],
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/photos HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {USER_TOKEN}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&body[..sent])
        .await
        .expect("part of the body");
    stream.flush().await.expect("flush");
    stream
}

#[tokio::test]
async fn an_uploaded_file_streams_into_a_temporary_file_that_a_broken_upload_leaves_behind_nowhere()
{
    let app = TestApp::spawn().await;
    // Half a megabyte of a 2 MB photo: on disk as it arrives, not in memory.
    let stream = stalled_upload(&app, 2_000_000, 500_000).await;
    eventually(
        "the part's bytes reach a temporary file in storage",
        async || {
            temp_files_in(&app, "photos")
                .iter()
                .any(|(_, len)| *len >= 400_000)
                .then_some(())
        },
    )
    .await;
    assert!(
        files_in(&app, "photos").is_empty(),
        "not stored until whole"
    );
    drop(stream);
    eventually(
        "the temporary file of the broken upload is removed",
        async || temp_files_in(&app, "photos").is_empty().then_some(()),
    )
    .await;
    assert!(files_in(&app, "photos").is_empty());
    assert_eq!(photo_count(&app).await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn an_upload_beyond_photo_max_concurrent_uploads_is_503_busy_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.photos.max_concurrent_uploads = 1.try_into().expect("nonzero");
    })
    .await;
    let stream = stalled_upload(&app, 2_000_000, 300_000).await;
    eventually("the first upload is under way", async || {
        (!temp_files_in(&app, "photos").is_empty()).then_some(())
    })
    .await;
    let good = bib_photo_png(&["1234"]);
    let res = upload(&app, &[("files", "second.png", &good)]).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse::<u64>()
        .expect("seconds");
    assert!(retry_after >= 1, "{retry_after}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "busy", "{body}");
    assert_message_names(&body, "PHOTO_MAX_CONCURRENT_UPLOADS");
    drop(stream);
    eventually(
        "an upload is taken again once the first one ended",
        async || {
            let res = upload(&app, &[("files", "third.png", &good)]).await;
            (res.status() == StatusCode::ACCEPTED).then_some(())
        },
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn requests_beyond_api_max_concurrent_requests_wait_their_turn_before_their_body_is_read() {
    let app = TestApp::spawn_with(|c| {
        c.max_concurrent_requests = 1.try_into().expect("nonzero");
    })
    .await;
    // The one slot is taken by an upload whose body keeps coming.
    let stream = stalled_upload(&app, 2_000_000, 300_000).await;
    eventually("the first upload is under way", async || {
        (!temp_files_in(&app, "photos").is_empty()).then_some(())
    })
    .await;
    let waiting = {
        let client = app.client.clone();
        let url = format!("http://{}/api/photos", app.addr);
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(USER_TOKEN)
                .json(&json!({"urls": ["not a url"]}))
                .send()
                .await
                .expect("an answer")
                .status()
        })
    };
    eventually("the second request waits for a slot", async || {
        let metrics = app.health_get("/metrics").await.text().await.expect("text");
        metrics
            .lines()
            .any(|l| l == "api_requests_waiting 1")
            .then_some(())
    })
    .await;
    assert!(!waiting.is_finished(), "answered while the slot was taken");
    drop(stream);
    assert_eq!(
        waiting.await.expect("the request task"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "read and answered once the upload ended"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn urls_in_json_are_bounded_by_the_body_limit_and_read_only_to_one_url_too_many() {
    let app = TestApp::spawn_with(|c| {
        c.photos.max_files = 2.try_into().expect("nonzero");
        c.photos.fetch_allowed_hosts = "photos.example.com".parse().expect("hosts");
    })
    .await;
    // Over API_BODY_LIMIT_BYTES (16 KiB in the tests), far under PHOTO_MAX_REQUEST_BYTES.
    let many = format!("{{\"urls\": [{}\"\"]}}", "\"\",".repeat(10_000));
    assert!(many.len() > app.config.body_limit_bytes.get());
    let res = post_json(&app, many).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "payload_too_large", "{body}");

    // Reading stops at the third URL: what follows it is never parsed.
    let res = post_json(&app, r#"{"urls": ["https://photos.example.com/1", "https://photos.example.com/2", "https://photos.example.com/3", not json at all"#).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["field"], "urls", "{body}");
    assert_message_names(&body, "PHOTO_MAX_FILES");

    // Two are taken; an unknown field and a missing `urls` still name themselves.
    let res = post_urls(
        &app,
        json!([
            "https://photos.example.com/1",
            "https://photos.example.com/2"
        ]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    for (sent, field) in [
        (json!({"urls": [], "more": 1}), "more"),
        (json!({}), "urls"),
        (json!({"urls": [1]}), "urls[0]"),
    ] {
        let res = post_json(&app, sent.to_string()).await;
        assert!(res.status().is_client_error(), "{sent}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["field"], field, "{sent}: {body}");
    }
    app.cleanup().await;
}

/// The `storage_path` of photo `id`.
async fn storage_path(app: &TestApp, id: i64) -> String {
    sqlx::query_scalar("SELECT storage_path FROM photos WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db().pool)
        .await
        .expect("the photo's path")
}

#[tokio::test]
async fn the_original_streams_back_as_uploaded_with_its_type_length_name_and_etag() {
    let app = TestApp::spawn().await;
    // Several chunks of the stream, and a name that needs encoding.
    let mut png = bib_photo_png(&["1234"]);
    png.resize(png.len() + 3 * 1024 * 1024 + 17, 7);
    let res = upload(&app, &[("file", "llegada ñ (1).png", &png)]).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let id = ids_of(&res.json().await.expect("json"))[0];

    let path = format!("/api/photos/{id}/original");
    let res = app.get(USER_TOKEN, &path).await;
    assert_eq!(res.status(), StatusCode::OK);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("content-length"), png.len().to_string());
    assert_eq!(
        header("content-disposition"),
        "inline; filename=\"llegada _ (1).png\"; filename*=UTF-8''llegada%20%C3%B1%20%281%29.png"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("cache-control").starts_with("private"));
    let etag = header("etag");
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag:?}");
    let served = res.bytes().await.expect("body");
    assert!(served == png, "the served bytes differ from the upload");

    let cached = app
        .client
        .get(app.url(&path))
        .bearer_auth(USER_TOKEN)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert!(cached.bytes().await.expect("body").is_empty());
    let stale = app
        .client
        .get(app.url(&path))
        .bearer_auth(USER_TOKEN)
        .header("if-none-match", "\"another\"")
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), StatusCode::OK);

    assert_eq!(
        app.get_anonymous(&path).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = app.get(USER_TOKEN, "/api/photos/999999/original").await;
    let body = crate::helpers::assert_error(res, 404, "not_found").await;
    assert_message_names(&body, "no photo with id 999999");

    // The row stays, the file is gone: a 404 that says so.
    std::fs::remove_file(app.storage.path().join(storage_path(&app, id).await))
        .expect("remove the original");
    let res = app.get(USER_TOKEN, &path).await;
    let body = crate::helpers::assert_error(res, 404, "not_found").await;
    assert_message_names(&body, "gone from storage");
    app.cleanup().await;
}

#[tokio::test]
async fn a_photo_given_by_url_has_no_original_until_it_is_fetched() {
    let app = TestApp::spawn_with(|c| {
        c.photos.fetch_allowed_hosts = "photos.example.com".parse().expect("hosts");
    })
    .await;
    let res = post_urls(&app, json!(["https://photos.example.com/a.jpg"])).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let id = ids_of(&res.json().await.expect("json"))[0];
    let res = app
        .get(USER_TOKEN, &format!("/api/photos/{id}/original"))
        .await;
    let body = crate::helpers::assert_error(res, 404, "not_found").await;
    assert_message_names(&body, "no original yet");
    app.cleanup().await;
}

#[tokio::test]
async fn a_single_file_part_is_accepted_alone_and_mixed_with_files_parts_in_the_order_sent() {
    let app = TestApp::spawn().await;
    let (jpeg, png) = (bib_photo_jpeg(&["1"]), bib_photo_png(&["2"]));
    let res = upload(&app, &[("file", "one.jpg", &jpeg)]).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let single = ids_of(&res.json().await.expect("json"));
    assert_eq!(single.len(), 1);
    let photo = json_of(&app, &format!("/api/photos/{}", single[0])).await;
    assert_eq!(photo["original_name"], "one.jpg");

    let res = upload(
        &app,
        &[
            ("files", "a.png", &png),
            ("file", "b.jpg", &jpeg),
            ("files", "c.png", &png),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let mixed = ids_of(&res.json().await.expect("json"));
    let mut names = Vec::new();
    for id in &mixed {
        let photo = json_of(&app, &format!("/api/photos/{id}")).await;
        names.push(photo["original_name"].as_str().expect("a name").to_owned());
    }
    assert_eq!(names, ["a.png", "b.jpg", "c.png"]);

    // A part of another name, even beside good ones, is refused naming it,
    // and what was stored before it is removed.
    let res = upload(&app, &[("file", "ok.jpg", &jpeg), ("image", "x.png", &png)]).await;
    let body = crate::helpers::assert_error(res, 422, "validation_failed").await;
    assert_eq!(body["field"], "image");
    assert_message_names(&body, "`file`");
    assert_eq!(photo_count(&app).await, 4);
    assert_eq!(files_in(&app, "photos").len(), 4);
    app.cleanup().await;
}
