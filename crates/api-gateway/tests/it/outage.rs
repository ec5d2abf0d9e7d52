//! A Redis outage costs registrations no latency: the enqueue after the commit
//! has a short deadline and a circuit breaker, so with Redis stopped every
//! registration still answers 201 at once, and once Redis is back the
//! qr-worker's reconciler carries every row to `ready`.

use std::time::{Duration, Instant};

use queue_core::BrokerConfig;
use queue_core::testing::{PrivateRedis, TestRedis, eventually};
use serde_json::{Value, json};

use crate::helpers::{TestApp, USER_TOKEN};

const PEOPLE: usize = 20;
/// Well under the ~1.1 s a registration waited for the client's connection
/// retries before the deadline, with room for a loaded test machine.
const MOST_A_REGISTRATION_TAKES: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_registrations_answer_at_once_and_every_row_becomes_ready_once_it_is_back()
 {
    let mut redis = PrivateRedis::start_with_aof().await;
    let url = redis.url();
    let test_redis = TestRedis::on(BrokerConfig::new(url.clone())).await;
    let mut app = TestApp::spawn_on(test_redis, &url, |c| {
        c.enqueue.timeout = Duration::from_millis(50);
    })
    .await;
    app.start_qr_worker().await;
    // A worker that has been running: its reconciler has run at least once.
    eventually("the qr-worker's reconciler has run", async || {
        (app.qr_stats().await.completed >= 1).then_some(())
    })
    .await;
    redis.kill().await;

    let mut took = Vec::new();
    let mut ids = Vec::new();
    for n in 0..PEOPLE {
        let sent_at = Instant::now();
        let res = app
            .post_person(
                Some(USER_TOKEN),
                json!({"document": format!("O-{n:04}"), "first_name": "Ana", "last_name": "Rey"}),
            )
            .await;
        took.push(sent_at.elapsed());
        assert_eq!(res.status(), 201, "registration {n} while Redis is down");
        let person: Value = res.json().await.expect("json");
        assert_eq!(person["qr_status"], "pending");
        ids.push(person["id"].as_i64().expect("id"));
    }
    let millis: Vec<u128> = took.iter().map(Duration::as_millis).collect();
    eprintln!("registrations with Redis down took (ms): {millis:?}");
    assert!(
        took.iter().all(|t| *t < MOST_A_REGISTRATION_TAKES),
        "every registration answers within {MOST_A_REGISTRATION_TAKES:?} while Redis is down: {millis:?} ms"
    );

    // The breaker opened: /readyz on the health port says so, with why.
    let ready = app.health_get("/readyz").await;
    assert_eq!(ready.status(), 503, "Redis is down");
    let ready: Value = ready.json().await.expect("json");
    let enqueue = ready["checks"]["enqueue"].as_str().unwrap_or_default();
    assert!(
        enqueue.starts_with("circuit open after 5 consecutive failures"),
        "{ready}"
    );
    assert_eq!(ready["checks"]["postgres"], "ok", "{ready}");

    redis.restart().await;
    for id in ids {
        app.until_ready(id, Duration::from_secs(30)).await;
    }
    app.cleanup().await;
    redis.kill().await;
}
