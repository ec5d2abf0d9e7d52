//! The gateway and the qr-worker on a real Redis Cluster (three masters started
//! by the test, `REDIS_URL` listing them): registrations become QR files, the
//! admin API sees the queue, and a worker that stops mid-stream hands its work
//! to the next one.

use qr_worker::testing::decode_qr_png;
use queue_core::testing::{PATIENCE, PrivateCluster, TestRedis};
use serde_json::{Value, json};

use crate::helpers::{TestApp, USER_TOKEN};

const PEOPLE: usize = 30;

#[tokio::test]
async fn registrations_through_the_gateway_become_qr_files_on_a_redis_cluster() {
    let cluster = PrivateCluster::start().await;
    let redis = TestRedis::on(cluster.broker_config()).await;
    let mut app = TestApp::spawn_on(redis, &cluster.url(), |_| {}).await;
    assert!(app.config.redis_cluster, "several URLs mean a cluster");

    // The first half waits in the stream while no worker runs.
    let mut ids = Vec::new();
    for n in 0..PEOPLE {
        if n == PEOPLE / 2 {
            app.start_qr_worker().await;
        }
        let res = app
            .post_person(
                Some(USER_TOKEN),
                json!({"document": format!("V-{n:08}"), "first_name": "Ana", "last_name": "Pérez"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let person: Value = res.json().await.expect("json");
        ids.push(person["id"].as_i64().expect("id"));
    }

    for (n, id) in ids.iter().enumerate() {
        app.until_ready(*id, PATIENCE).await;
        let png = std::fs::read(app.file(&format!("qr/V-{n:08}.png"))).expect("the QR file");
        assert_eq!(decode_qr_png(&png), format!("PERSON:V-{n:08}"));
    }

    // The admin API reads the queue's stats from the master that holds it.
    let qr = app.queue_listed("qr").await;
    assert!(
        qr["completed"].as_u64().expect("a count") >= PEOPLE as u64,
        "{qr}"
    );
    assert_eq!(
        (qr["waiting"].as_u64(), qr["failed"].as_u64()),
        (Some(0), Some(0)),
        "{qr}"
    );
    app.cleanup().await;
}
