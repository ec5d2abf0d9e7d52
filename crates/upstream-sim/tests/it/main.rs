//! Integration tests: each starts the simulators on port 0 and talks real HTTP.

mod bank;
mod bnb;
mod lifecycle;
mod llm;
mod wispro;

use std::time::Duration;

use upstream_sim::{Sim, SimConfig, WisproConfig};

/// Clients in the data set of [`start`]: small enough to page through quickly.
pub const CLIENTS: usize = 250;
/// The data set's seed in [`start`].
pub const SEED: u64 = 7;

/// The simulators with a small Wispro data set, on a free port.
pub async fn start() -> Sim {
    start_with(SimConfig {
        wispro: WisproConfig {
            clients: CLIENTS,
            seed: SEED,
            ..WisproConfig::default()
        },
        ..SimConfig::default()
    })
    .await
}

pub async fn start_with(config: SimConfig) -> Sim {
    Sim::start(config).await.expect("the simulator starts")
}

/// A client whose every call ends within five seconds.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client")
}

/// The status and JSON body of a response.
pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// Polls a BNB QR call with `token` until the simulator answers 401 (the
/// token expired); bounded by five seconds.
pub async fn eventually_401(sim: &Sim, token: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let code = http()
            .post(format!(
                "{}{}/getQRbyGenerationDateAsync",
                sim.url(),
                upstream_sim::bank::bnb::QR_PATH
            ))
            .bearer_auth(token)
            .json(&serde_json::json!({"generationDate": "2026-01-01"}))
            .send()
            .await
            .expect("sent")
            .status();
        if code == 401 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
