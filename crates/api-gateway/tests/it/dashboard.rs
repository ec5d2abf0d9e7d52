//! The dashboard over HTTP, as a browser without JavaScript sees it: sign-in,
//! the session cookie, sign-out, CSRF and origin checks, roles. The browser
//! scenarios are in `browser.rs`.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::helpers::{ADMIN_TOKEN, TestApp, USER_TOKEN, WRONG_TOKEN};

/// A browser without JavaScript: keeps the session cookie, follows nothing.
pub struct Browser {
    client: reqwest::Client,
    base: String,
    pub cookie: Option<String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.url(""),
            cookie: None,
        }
    }

    fn remember(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().expect("ascii");
            let pair = v.split(';').next().expect("a pair");
            self.cookie = match pair.split_once('=') {
                Some((_, "")) => None,
                _ => Some(pair.to_owned()),
            };
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.expect("request");
        self.remember(res.headers());
        res
    }

    /// The page's HTML, after checking it answered 200.
    pub async fn page(&mut self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.text().await.expect("html")
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_with(path, form, &[]).await
    }

    pub async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request");
        self.remember(res.headers());
        res
    }

    pub async fn sign_in(&mut self, key: &str) -> reqwest::Response {
        self.post("/dashboard/sign-in", &[("key", key)]).await
    }

    /// The CSRF token of the forms of `html`.
    pub fn csrf(html: &str) -> String {
        let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
        html[at..].split('"').next().expect("a value").to_owned()
    }
}

/// `application/x-www-form-urlencoded`, as a browser encodes a form.
pub fn form_body(form: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A new API key of `role` made through the admin API: (the key, its id).
pub async fn create_key(app: &TestApp, name: &str, role: &str) -> (String, i64) {
    let res = app
        .client
        .post(app.url("/api/admin/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": name, "role": role}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: serde_json::Value = res.json().await.expect("json");
    (
        body["key"].as_str().expect("the key").to_owned(),
        body["id"].as_i64().expect("its id"),
    )
}

fn location(res: &reqwest::Response) -> &str {
    res.headers()
        .get(LOCATION)
        .expect("a Location")
        .to_str()
        .expect("ascii")
}

#[tokio::test]
async fn signed_out_pages_send_the_browser_to_sign_in_and_come_back_after() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);

    let res = browser.get("/dashboard").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dashboard/sign-in");
    let res = browser.get("/dashboard/audit?before=5").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/dashboard/sign-in?next=/dashboard/audit%3Fbefore%3D5"
    );
    let form = browser
        .page("/dashboard/sign-in?next=/dashboard/audit")
        .await;
    assert!(form.contains(r#"type="password""#), "{form}");
    assert!(
        form.contains(r#"name="next" value="/dashboard/audit""#),
        "{form}"
    );
    // Elsewhere than the dashboard is no place to come back to.
    let form = browser
        .page("/dashboard/sign-in?next=//evil.example/")
        .await;
    assert!(form.contains(r#"name="next" value="/dashboard""#), "{form}");

    let res = browser
        .post(
            "/dashboard/sign-in",
            &[("key", ADMIN_TOKEN), ("next", "/dashboard/audit")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dashboard/audit");
    // The live stream and scripts get a status, not a page.
    let mut signed_out = Browser::new(&app);
    let res = signed_out.get("/dashboard/live").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn a_session_cookie_is_http_only_strict_and_scoped_to_the_dashboard_and_ends_at_sign_out() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);

    let res = browser.sign_in(ADMIN_TOKEN).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dashboard");
    let cookie = res.headers()[SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(
        !cookie.contains(ADMIN_TOKEN),
        "the cookie is a session, not the key"
    );

    let overview = browser.page("/dashboard").await;
    assert!(overview.contains("<h1>Queues</h1>"), "{overview}");
    assert!(
        overview.contains("bootstrap-admin (API_ADMIN_TOKEN)"),
        "who is signed in: {overview}"
    );
    let old = browser.cookie.clone();

    let res = browser.post("/dashboard/sign-out", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dashboard/sign-in");
    assert!(
        res.headers()[SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    assert_eq!(browser.cookie, None);
    // The old cookie, replayed, is no session any more.
    browser.cookie = old;
    let res = browser.get("/dashboard").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // Behind a TLS proxy the cookie is Secure.
    let res = Browser::new(&app)
        .post_with(
            "/dashboard/sign-in",
            &[("key", ADMIN_TOKEN)],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    let cookie = res.headers()[SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.contains("; Secure"), "{cookie}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_wrong_key_is_a_401_sign_in_page_and_a_user_key_a_403_page() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);

    let res = browser.sign_in(WRONG_TOKEN).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(SET_COOKIE).is_none());
    let html = res.text().await.expect("html");
    assert!(html.contains("wrong, expired or revoked"), "{html}");
    assert!(
        html.contains(r#"type="password""#),
        "the form again: {html}"
    );

    let res = browser.sign_in(USER_TOKEN).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get(SET_COOKIE).is_none());
    let html = res.text().await.expect("html");
    assert!(html.contains("not the dashboard"), "{html}");
    let res = browser.get("/dashboard").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    app.cleanup().await;
}

#[tokio::test]
async fn a_form_from_another_site_is_refused() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);

    let res = browser
        .post_with(
            "/dashboard/sign-in",
            &[("key", ADMIN_TOKEN)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = browser
        .post_with(
            "/dashboard/sign-in",
            &[("key", ADMIN_TOKEN)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(browser.cookie, None);
    let origin = format!("http://{}", app.addr);
    let res = browser
        .post_with(
            "/dashboard/sign-in",
            &[("key", ADMIN_TOKEN)],
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(browser.cookie.is_some());
    app.cleanup().await;
}

#[tokio::test]
async fn the_assets_are_served_from_the_binary_and_cached() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ADMIN_TOKEN).await;
    let html = browser.page("/dashboard").await;
    let css = html
        .split('"')
        .find(|s| s.starts_with("/dashboard/assets/dashboard.css?v="))
        .expect("the stylesheet is linked")
        .to_owned();
    // Assets need no session: the sign-in page uses them.
    let res = Browser::new(&app).get(&css).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("immutable")
    );
    let res = Browser::new(&app)
        .get("/dashboard/assets/dashboard.js")
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("js").contains("EventSource"));
    app.cleanup().await;
}

#[tokio::test]
async fn an_operator_key_signs_in_and_revoking_it_ends_its_session_at_once() {
    let app = TestApp::spawn().await;
    let (key, id) = create_key(&app, "ops-alice", "operator").await;
    let mut browser = Browser::new(&app);
    let res = browser.sign_in(&key).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let overview = browser.page("/dashboard").await;
    assert!(overview.contains("ops-alice (rsq_"), "{overview}");
    assert!(overview.contains("operator"), "{overview}");

    let res = app
        .client
        .delete(app.url(&format!("/api/admin/keys/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert!(res.status().is_success(), "{}", res.status());
    let res = browser.get("/dashboard").await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the session ended with its key"
    );
    let res = browser.sign_in(&key).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn an_action_without_the_sessions_csrf_token_is_refused_and_with_it_is_audited() {
    let app = TestApp::spawn().await;
    // The qr queue exists once a person was registered.
    let res = app
        .post_person(
            Some(USER_TOKEN),
            serde_json::json!({"document": "V-27182818", "first_name": "Ana", "last_name": "Mora"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let (key, _) = create_key(&app, "ops-bob", "operator").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&key).await;
    let html = browser.page("/dashboard/queues/qr").await;
    let csrf = Browser::csrf(&html);

    let back = ("back", "/dashboard/queues/qr");
    let res = browser.post("/dashboard/queues/qr/pause", &[back]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no token");
    let res = browser
        .post("/dashboard/queues/qr/pause", &[back, ("csrf", "0123")])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a wrong token");
    // Another session's token is no good either.
    let mut other = Browser::new(&app);
    other.sign_in(ADMIN_TOKEN).await;
    let theirs = Browser::csrf(&other.page("/dashboard/queues/qr").await);
    assert_ne!(theirs, csrf);
    let res = browser
        .post("/dashboard/queues/qr/pause", &[back, ("csrf", &theirs)])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        !app.queue_listed("qr").await["paused"]
            .as_bool()
            .expect("bool")
    );

    let res = browser
        .post("/dashboard/queues/qr/pause", &[back, ("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dashboard/queues/qr");
    assert!(
        app.queue_listed("qr").await["paused"]
            .as_bool()
            .expect("bool")
    );
    // The outcome shows once, on the next page.
    let html = browser.page("/dashboard/queues/qr").await;
    assert!(html.contains("Paused queue qr"), "{html}");
    let html = browser.page("/dashboard/queues/qr").await;
    assert!(!html.contains("Paused queue qr"), "{html}");
    let audit = browser.page("/dashboard/audit").await;
    assert!(audit.contains("ops-bob (rsq_"), "{audit}");
    assert!(audit.contains("queue.pause"), "{audit}");
    app.cleanup().await;
}

#[tokio::test]
async fn the_overview_charts_the_jobs_the_workers_completed() {
    let mut app = TestApp::spawn().await;
    app.start_qr_worker().await;
    for document in ["V-11111111", "V-22222222"] {
        let res = app
            .post_person(
                Some(USER_TOKEN),
                serde_json::json!({"document": document, "first_name": "Ana", "last_name": "Mora"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let id = res.json::<serde_json::Value>().await.expect("json")["id"].clone();
        app.person_until(&format!("/api/persons/{id}"), "ready")
            .await;
    }
    let mut browser = Browser::new(&app);
    browser.sign_in(ADMIN_TOKEN).await;
    // The completions in the completed chart's label: both persons' QRs, and
    // whatever the worker's repeating jobs did meanwhile.
    let charted = |html: &str, range: &str| -> u64 {
        let chart = html
            .find(&format!(r#"data-chart="qr:{range}:completed""#))
            .expect("the completed chart");
        let label = &html[chart..];
        let at = label.find(r#"aria-label=""#).expect("a label") + 12;
        label[at..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count first")
    };
    // The settling step counts a completion, so the history may trail the row
    // by a moment.
    let html = queue_core::testing::eventually("both completions are charted", async || {
        let html = browser.page("/dashboard").await;
        (charted(&html, "hour") >= 2).then_some(html)
    })
    .await;
    assert!(html.contains(r#"data-chart="qr:hour:failed""#), "{html}");
    assert!(html.contains("mean wait"), "{html}");
    let day = browser.page("/dashboard?range=day").await;
    assert!(charted(&day, "day") >= 2, "{day}");
    assert!(day.contains("per 30 minutes"), "{day}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_delayed_job_is_run_now_then_deleted_after_confirming_and_both_are_audited() {
    let app = TestApp::spawn().await;
    let q = jobs::QR.open(&app.redis.broker).expect("queue");
    let job = queue_core::NewJob::new("qr.generate", b"not protobuf".to_vec())
        .delay(std::time::Duration::from_secs(3600));
    let id = match app.redis.enqueue(&q, job).await {
        queue_core::Enqueued::Scheduled { id, .. } => id,
        other => panic!("a delayed job: {other:?}"),
    };
    let (key, _) = create_key(&app, "ops-dana", "operator").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&key).await;

    let delayed = browser.page("/dashboard/queues/qr?state=delayed").await;
    assert!(
        delayed.contains(&format!(r#"data-job="{id}""#)),
        "{delayed}"
    );
    let csrf = Browser::csrf(&delayed);
    let res = browser
        .post(
            &format!("/dashboard/queues/qr/jobs/{id}/promote"),
            &[
                ("csrf", &csrf),
                ("back", "/dashboard/queues/qr?state=delayed"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let delayed = browser.page("/dashboard/queues/qr?state=delayed").await;
    assert!(delayed.contains(&format!("Job {id} runs now")), "{delayed}");
    assert!(
        !delayed.contains(&format!(r#"data-job="{id}""#)),
        "{delayed}"
    );
    let waiting = browser.page("/dashboard/queues/qr?state=waiting").await;
    assert!(
        waiting.contains(&format!(r#"data-job="{id}""#)),
        "{waiting}"
    );

    // Deleting asks first, on a page of its own.
    let confirm_link = format!("/dashboard/queues/qr/confirm?action=delete&amp;job={id}");
    assert!(waiting.contains(&confirm_link), "{waiting}");
    let confirm = browser
        .page(&format!(
            "/dashboard/queues/qr/confirm?action=delete&job={id}"
        ))
        .await;
    assert!(confirm.contains(&format!("Delete job {id}?")), "{confirm}");
    assert!(confirm.contains("Yes, delete"), "{confirm}");
    assert_eq!(app.redis.stats(&q).await.waiting, 1, "nothing deleted yet");
    let res = browser
        .post(
            &format!("/dashboard/queues/qr/jobs/{id}/delete"),
            &[
                ("csrf", &csrf),
                ("back", "/dashboard/queues/qr?state=waiting"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let waiting = browser.page("/dashboard/queues/qr?state=waiting").await;
    assert!(waiting.contains(&format!("Deleted job {id}")), "{waiting}");
    assert_eq!(app.redis.stats(&q).await.waiting, 0);
    // Deleting it again says there is no such job.
    browser
        .post(
            &format!("/dashboard/queues/qr/jobs/{id}/delete"),
            &[("csrf", &csrf), ("back", "/dashboard/queues/qr")],
        )
        .await;
    let html = browser.page("/dashboard/queues/qr").await;
    assert!(html.contains(r#"class="flash error""#), "{html}");

    let audit = browser.page("/dashboard/audit").await;
    for action in ["queue.promote", "queue.delete"] {
        assert!(audit.contains(action), "{action} in {audit}");
    }
    assert!(audit.contains(&format!("qr/{id}")), "{audit}");
    app.cleanup().await;
}

#[tokio::test]
async fn repeated_wrong_keys_from_one_address_slow_the_sign_in_down() {
    let app = TestApp::spawn_with(|c| {
        c.auth.max_failures = 3.try_into().expect("nonzero");
    })
    .await;
    let mut browser = Browser::new(&app);
    for _ in 0..3 {
        let res = browser.sign_in(WRONG_TOKEN).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right key waits out the window, told so on the sign-in page.
    let res = browser.sign_in(ADMIN_TOKEN).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let html = res.text().await.expect("html");
    assert!(html.contains("Too many failed sign-ins"), "{html}");
    assert_eq!(browser.cookie, None);
    app.cleanup().await;
}
