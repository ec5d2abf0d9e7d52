//! API keys, roles and the audit log: keys created, listed and revoked by an
//! admin; what each role may do; wrong, revoked and expired keys; the
//! slow-down of repeated failures; queue actions in the audit log.

use std::time::Duration;

use queue_core::testing::{eventually, fast_worker_config};
use queue_core::{Job, JobError, NewJob};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, USER_TOKEN, assert_error, assert_unauthorized};

impl TestApp {
    /// POST `body` to `/api/admin/keys` with `token`.
    async fn post_key(&self, token: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/admin/keys"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// A new key of `role` named `name`, created by the bootstrap admin: the
    /// whole key and its id.
    async fn create_key(&self, name: &str, role: &str) -> (String, i64) {
        let res = self
            .post_key(ADMIN_TOKEN, json!({"name": name, "role": role}))
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("json");
        let key = body["key"].as_str().expect("the whole key").to_owned();
        (key, body["id"].as_i64().expect("id"))
    }

    async fn revoke_key(&self, token: &str, id: i64) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/api/admin/keys/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    async fn post_with(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Makes `n` dead letters in queue `name` (a worker whose handler always
    /// fails permanently, stopped once they are there).
    async fn dead_letters(&self, name: &str, n: u64) {
        let q = self.redis.broker.queue(name).expect("queue");
        for i in 0..n {
            self.redis
                .enqueue(&q, NewJob::new("test.job", format!("job-{i}").into_bytes()))
                .await;
        }
        let worker = self
            .redis
            .spawn_worker(&q, fast_worker_config(), |_job: Job| async {
                Err(JobError::permanent(anyhow::anyhow!("boom")))
            });
        self.redis
            .stats_until(&q, "the jobs are dead letters", |s| s.failed == n)
            .await;
        worker.stop().await;
    }
}

/// The audit entries of the gateway, newest first.
async fn audit(app: &TestApp) -> Vec<Value> {
    let page = app.get_json(ADMIN_TOKEN, "/api/admin/audit").await;
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn an_admin_creates_lists_and_revokes_keys_and_each_role_gets_what_it_may() {
    let app = TestApp::spawn().await;
    let (operator, operator_id) = app.create_key("ops-alice", "operator").await;
    let (user, _) = app.create_key("shop-frontend", "user").await;
    assert!(operator.starts_with("rsq_"), "{operator}");

    // A user key: the domain API, not the queues, not the keys.
    assert_eq!(app.get(&user, "/api/persons/1").await.status(), 404);
    assert_error(app.get(&user, "/api/queues").await, 403, "forbidden").await;
    assert_error(app.get(&user, "/api/admin/keys").await, 403, "forbidden").await;
    // An operator key: the queues too, still not the keys nor the audit log.
    assert_eq!(app.get(&operator, "/api/queues").await.status(), 200);
    assert_eq!(app.get(&operator, "/api/persons/1").await.status(), 404);
    let refused = app
        .post_key(&operator, json!({"name": "mine", "role": "admin"}))
        .await;
    assert_error(refused, 403, "forbidden").await;
    assert_error(
        app.get(&operator, "/api/admin/audit").await,
        403,
        "forbidden",
    )
    .await;

    let keys = app.get_json(ADMIN_TOKEN, "/api/admin/keys").await;
    let listed = keys
        .as_array()
        .expect("a list")
        .iter()
        .find(|k| k["id"] == operator_id)
        .expect("the operator key is listed")
        .clone();
    assert_eq!(listed["name"], "ops-alice");
    assert_eq!(listed["role"], "operator");
    assert_eq!(listed["created_by"], "bootstrap-admin (API_ADMIN_TOKEN)");
    assert!(operator.starts_with(listed["prefix"].as_str().expect("prefix")));
    assert!(
        !keys.to_string().contains(&operator[13..]),
        "the list never shows a secret"
    );
    // Used a moment ago: its last use is written, off the request.
    eventually("last_used_at is set", async || {
        let keys = app.get_json(ADMIN_TOKEN, "/api/admin/keys").await;
        let k = keys
            .as_array()?
            .iter()
            .find(|k| k["id"] == operator_id)?
            .clone();
        k["last_used_at"].is_string().then_some(())
    })
    .await;

    let revoked = app.revoke_key(ADMIN_TOKEN, operator_id).await;
    assert_eq!(revoked.status(), 200);
    let revoked: Value = revoked.json().await.expect("json");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    // On the replica that revoked it: at once, cache or not.
    assert_unauthorized(app.get(&operator, "/api/queues").await).await;
    assert_error(app.revoke_key(ADMIN_TOKEN, 999_999).await, 404, "not_found").await;

    let entries = audit(&app).await;
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("key.revoke", "no API key 999999"),
            ("key.revoke", "ok"),
            ("key.create", "ok"),
            ("key.create", "ok"),
        ]
    );
    assert_eq!(entries[1]["actor"], "bootstrap-admin (API_ADMIN_TOKEN)");
    assert_eq!(
        entries[1]["target"],
        format!(
            "key {} (ops-alice)",
            listed["prefix"].as_str().expect("prefix")
        )
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_operator_key_retries_a_dead_letter_and_the_audit_log_says_who() {
    let app = TestApp::spawn().await;
    app.dead_letters("emails", 2).await;
    let (operator, _) = app.create_key("ops-bob", "operator").await;
    let page = app.get_json(&operator, "/api/queues/emails/failed").await;
    let id = page["items"][0]["id"].as_str().expect("id").to_owned();

    let retried = app
        .post_with(&operator, &format!("/api/queues/emails/failed/{id}/retry"))
        .await;
    assert_eq!(retried.status(), 200);
    let again = app
        .post_with(&operator, &format!("/api/queues/emails/failed/{id}/retry"))
        .await;
    assert_error(again, 404, "not_found").await;
    assert_eq!(
        app.post_with(&operator, "/api/queues/emails/pause")
            .await
            .status(),
        200
    );

    let entries = audit(&app).await;
    let prefix = &operator[..12];
    let actor = format!("ops-bob ({prefix})");
    let target = format!("emails/{id}");
    assert_eq!(entries[0]["action"], "queue.pause");
    assert_eq!(entries[0]["target"], "emails");
    assert_eq!(entries[1]["action"], "queue.retry");
    assert_eq!(entries[1]["target"], target);
    assert_eq!(
        entries[1]["outcome"],
        format!("dead letter \"{id}\" not found in queue \"emails\""),
    );
    assert_eq!(entries[2]["action"], "queue.retry");
    assert_eq!(entries[2]["target"], target);
    assert_eq!(entries[2]["outcome"], "ok");
    for e in &entries[..3] {
        assert_eq!(e["actor"], actor.as_str(), "{e}");
    }
    // A user may not, and is not recorded: nothing was attempted.
    let (user, _) = app.create_key("shop", "user").await;
    let before = audit(&app).await.len();
    assert_error(
        app.post_with(&user, "/api/queues/emails/failed/retry-all")
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(audit(&app).await.len(), before);
    app.cleanup().await;
}

#[tokio::test]
async fn an_expired_key_gets_401_and_a_revoked_one_stops_on_another_replica_within_the_cache_ttl() {
    let app = TestApp::spawn_with(|c| c.auth.key_cache_ttl = Duration::from_millis(500)).await;
    let res = app
        .post_key(
            ADMIN_TOKEN,
            json!({"name": "short-lived", "role": "user", "expires": "1s"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let short: Value = res.json().await.expect("json");
    assert!(short["expires_at"].is_string(), "{short}");
    let short = short["key"].as_str().expect("key").to_owned();
    eventually("the key has expired", async || {
        let res = app.get(&short, "/api/persons/1").await;
        (res.status() == 401).then_some(())
    })
    .await;

    // A second replica of the gateway, on the same database.
    let other = TestApp::spawn_replica_of(&app).await;
    let (key, id) = app.create_key("replicated", "user").await;
    assert_eq!(other.get(&key, "/api/persons/1").await.status(), 404);
    assert_eq!(app.revoke_key(ADMIN_TOKEN, id).await.status(), 200);
    // The other replica trusted its cached verification for at most the TTL.
    eventually("the other replica refuses the revoked key", async || {
        let res = other.get(&key, "/api/persons/1").await;
        (res.status() == 401).then_some(())
    })
    .await;
    other.cleanup().await;
    app.cleanup().await;
}

#[tokio::test]
async fn repeated_wrong_keys_from_one_address_are_answered_429_until_the_window_ends() {
    let app = TestApp::spawn_with(|c| {
        c.auth.max_failures = 3.try_into().expect("nonzero");
        c.auth.failure_window = Duration::from_secs(2);
    })
    .await;
    // No key at all is not a guess: not counted.
    for _ in 0..5 {
        assert_unauthorized(app.get_anonymous("/api/queues").await).await;
    }
    let wrong = "rsq_aaaaaaaa_0123456789012345678901234567890123456789";
    for token in [wrong, "nope", "admin-token-0123456788"] {
        assert_unauthorized(app.get(token, "/api/queues").await).await;
    }
    for token in [wrong, ADMIN_TOKEN] {
        let res = app.get(token, "/api/queues").await;
        let retry_after: u64 = res.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        assert_error(res, 429, "too_many_failures").await;
    }
    eventually("the window ends", async || {
        let res = app.get(ADMIN_TOKEN, "/api/queues").await;
        (res.status() == 200).then_some(())
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_new_key_with_a_bad_field_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"name": "", "role": "user"}), 422, "name"),
        (json!({"name": "a b", "role": "user"}), 422, "name"),
        (json!({"name": "ok", "role": "root"}), 400, "role"),
        (json!({"role": "user"}), 400, "name"),
        (
            json!({"name": "ok", "role": "user", "expires": "soon"}),
            422,
            "expires",
        ),
        (
            json!({"name": "ok", "role": "user", "expires": "2001-01-01T00:00:00Z"}),
            422,
            "expires",
        ),
        (
            json!({"name": "ok", "role": "user", "colour": "red"}),
            400,
            "colour",
        ),
    ];
    for (body, status, field) in cases {
        let res = app.post_key(ADMIN_TOKEN, body.clone()).await;
        assert_eq!(res.status(), status, "{body}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    assert!(audit(&app).await.is_empty(), "nothing was attempted");
    let bad_limit = app.get(ADMIN_TOKEN, "/api/admin/audit?limit=0").await;
    let err = assert_error(bad_limit, 422, "validation_failed").await;
    assert_eq!(err["field"], "limit");
    assert_error(
        app.get(USER_TOKEN, "/api/admin/audit").await,
        403,
        "forbidden",
    )
    .await;
    app.cleanup().await;
}
