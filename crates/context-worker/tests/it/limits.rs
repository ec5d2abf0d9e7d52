//! The global limit a local LLM server needs: many replicas, few calls at once.

use context_worker::LlmApi;
use queue_core::testing::eventually;
use store::companies::ContextStatus;

use crate::support::{ContextWorld, TestApp, long_context};

#[tokio::test]
async fn three_replicas_at_concurrency_ten_with_a_global_concurrency_of_two_keep_two_calls_in_flight()
 {
    let app = TestApp::new().await;
    app.sim
        .llm()
        .set_latency(std::time::Duration::from_millis(60));
    let mut config = app.config(LlmApi::OpenAi);
    config.worker.concurrency = 10.try_into().expect("nonzero");
    config.worker.global_concurrency = Some(2.try_into().expect("nonzero"));
    config.worker.limit_poll = queue_core::testing::ms(10);
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(app.spawn(config.clone()).await);
    }
    let mut ids = Vec::new();
    for n in 0..24 {
        let company = app
            .add_company(&long_context(1_600, n), ContextStatus::Pending)
            .await;
        app.enqueue(&company).await;
        ids.push(company.id);
    }

    for id in &ids {
        app.company_until(*id, ContextStatus::Processed).await;
    }
    let stats = app.sim.llm().stats();
    assert_eq!(stats.total.max_in_flight, 2, "{stats:?}");
    assert_eq!(
        stats.total.requests, 24,
        "one call each, no attempt lost to waiting"
    );
    let s = eventually("the queue is settled", async || {
        let s = app.stats().await;
        (s.active == 0).then_some(s)
    })
    .await;
    assert_eq!((s.retried, s.dead_lettered), (0, 0), "{s:#?}");
    for r in replicas {
        r.stop().await;
    }
    app.finish().await;
}
