//! A queue's jobs over the API: listed by state, one by id with its payload as
//! JSON, a delayed one promoted, a waiting one deleted (both in the audit log),
//! and the queue's per-minute history.

use std::time::Duration;

use queue_core::testing::fast_worker_config;
use queue_core::{Job, JobError, NewJob};
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, TestApp, USER_TOKEN, assert_error};

impl TestApp {
    async fn send(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn jobs_are_listed_shown_with_their_payload_promoted_and_deleted_through_the_audit_log() {
    let app = TestApp::spawn().await;
    let q = app.redis.queue("mail");
    let qr = jobs::v1::GenerateQr {
        person_id: 42,
        content: "PERSON:42".into(),
        path: "qr/42.png".into(),
    };
    let known = app
        .redis
        .enqueue(&q, NewJob::message("qr.generate", &qr))
        .await;
    let unknown = app.redis.enqueue(&q, NewJob::new("t.other", "x")).await;
    let later = app
        .redis
        .enqueue(
            &q,
            NewJob::new("t.later", "x")
                .delay(Duration::from_secs(3600))
                .unique_until_settled("later"),
        )
        .await;

    let page = app.get_json(ADMIN_TOKEN, "/api/queues/mail/jobs").await;
    assert_eq!(
        ids(&page),
        [known.id(), unknown.id()],
        "waiting by default: {page}"
    );
    assert!(page["next"].is_null());
    // Page by page with the cursor.
    let first = app
        .get_json(ADMIN_TOKEN, "/api/queues/mail/jobs?limit=1")
        .await;
    let next = first["next"].as_str().expect("a next page");
    let second = app
        .get_json(
            ADMIN_TOKEN,
            &format!("/api/queues/mail/jobs?limit=1&after={next}"),
        )
        .await;
    assert_eq!(
        [ids(&first), ids(&second)].concat(),
        [known.id(), unknown.id()]
    );
    let delayed = app
        .get_json(ADMIN_TOKEN, "/api/queues/mail/jobs?state=delayed")
        .await;
    assert_eq!(ids(&delayed), [later.id()]);
    assert_eq!(delayed["jobs"][0]["state"], "delayed");
    assert!(delayed["jobs"][0]["due_at_ms"].is_u64(), "{delayed}");

    let job = app
        .get_json(
            ADMIN_TOKEN,
            &format!("/api/queues/mail/jobs/{}", known.id()),
        )
        .await;
    assert_eq!(
        (job["state"].as_str(), job["kind"].as_str()),
        (Some("waiting"), Some("qr.generate")),
        "{job}"
    );
    assert_eq!(job["payload"]["person_id"], 42, "{job}");
    assert_eq!(job["payload"]["path"], "qr/42.png", "{job}");
    assert!(job["payload_error"].is_null(), "{job}");
    let other = app
        .get_json(
            ADMIN_TOKEN,
            &format!("/api/queues/mail/jobs/{}", unknown.id()),
        )
        .await;
    assert!(other["payload"].is_null(), "{other}");
    assert!(
        other["payload_error"]
            .as_str()
            .is_some_and(|e| e.contains("t.other")),
        "{other}"
    );
    assert_eq!(other["payload_bytes"], 1);

    // Promote the delayed job; a second promotion finds it waiting.
    let path = format!("/api/queues/mail/jobs/{}", later.id());
    let res = app
        .send(reqwest::Method::POST, &format!("{path}/promote"))
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_json(ADMIN_TOKEN, &path).await["state"], "waiting");
    let again = app
        .send(reqwest::Method::POST, &format!("{path}/promote"))
        .await;
    let err = assert_error(again, 409, "conflict").await;
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("waiting")),
        "{err}"
    );

    // Delete it: gone, its unique key with it.
    assert_eq!(app.send(reqwest::Method::DELETE, &path).await.status(), 204);
    assert_error(app.get(ADMIN_TOKEN, &path).await, 404, "not_found").await;
    assert_error(
        app.send(reqwest::Method::DELETE, &path).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        app.redis
            .admin
            .unique_holder(&q, "later")
            .await
            .expect("holder"),
        None
    );

    let audit = app.get_json(ADMIN_TOKEN, "/api/admin/audit").await;
    let seen: Vec<(String, String, String)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (text("action"), text("target"), text("outcome"))
        })
        .collect();
    let target = format!("mail/{}", later.id());
    for (action, outcome) in [("queue.delete_job", "ok"), ("queue.promote", "ok")] {
        assert!(
            seen.iter()
                .any(|(a, t, o)| a == action && *t == target && o == outcome),
            "{action} {outcome} not in {seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|(a, _, o)| a == "queue.promote" && o.contains("waiting")),
        "{seen:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn bad_job_requests_name_what_is_wrong() {
    let app = TestApp::spawn().await;
    let q = app.redis.queue("mail");
    app.redis.enqueue(&q, NewJob::new("t.job", "x")).await;
    for (path, field) in [
        ("/api/queues/mail/jobs?limit=0", "limit"),
        ("/api/queues/mail/jobs?state=failed&after=soon", "after"),
        ("/api/queues/mail/jobs?state=delayed&after=1-0", "after"),
        ("/api/queues/mail/history?minutes=0", "minutes"),
        ("/api/queues/mail/history?minutes=1441", "minutes"),
    ] {
        let err = assert_error(app.get(ADMIN_TOKEN, path).await, 422, "validation_failed").await;
        assert_eq!(err["field"], field, "{path}: {err}");
    }
    let long = format!("/api/queues/mail/jobs/{}", "x".repeat(201));
    let err = assert_error(app.get(ADMIN_TOKEN, &long).await, 422, "validation_failed").await;
    assert_eq!(err["field"], "id");
    assert_error(
        app.get(ADMIN_TOKEN, "/api/queues/mail/jobs?state=lost")
            .await,
        400,
        "invalid_parameter",
    )
    .await;
    for path in [
        "/api/queues/nope/jobs",
        "/api/queues/nope/history",
        "/api/queues/mail/jobs/nope",
    ] {
        assert_error(app.get(ADMIN_TOKEN, path).await, 404, "not_found").await;
    }
    // A user key sees none of it.
    for path in ["/api/queues/mail/jobs", "/api/queues/mail/history"] {
        assert_error(app.get(USER_TOKEN, path).await, 403, "forbidden").await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_history_counts_what_the_workers_did_per_minute() {
    let app = TestApp::spawn().await;
    let q = app.redis.queue("mail");
    let worker = app
        .redis
        .spawn_worker(&q, fast_worker_config(), |job: Job| async move {
            match job.kind() {
                "t.bad" => Err(JobError::permanent(anyhow::anyhow!("no"))),
                _ => Ok(()),
            }
        });
    app.redis
        .producer
        .enqueue_many(
            &q,
            ["t.ok", "t.ok", "t.ok", "t.bad"].map(|k| NewJob::new(k, "x")),
        )
        .await
        .expect("enqueue");
    app.redis
        .stats_until(&q, "three completed, one dead-lettered", |s| {
            s.completed == 3 && s.dead_lettered == 1
        })
        .await;
    worker.stop().await;
    let history = app
        .get_json(ADMIN_TOKEN, "/api/queues/mail/history?minutes=5")
        .await;
    let minutes = history["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 5);
    let sum = |k: &str| {
        minutes
            .iter()
            .map(|m| m[k].as_u64().expect("a count"))
            .sum::<u64>()
    };
    assert_eq!(
        (
            sum("completed"),
            sum("failed"),
            sum("dead_lettered"),
            sum("waited")
        ),
        (3, 1, 1, 4),
        "{history}"
    );
    let default = app.get_json(ADMIN_TOKEN, "/api/queues/mail/history").await;
    assert_eq!(default["minutes"].as_array().expect("minutes").len(), 60);
    app.cleanup().await;
}
