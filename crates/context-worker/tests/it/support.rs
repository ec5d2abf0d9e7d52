//! What the context tests add to the owners' test support
//! (`service::testing`'s world with an LLM simulator): the worker's config
//! for the world, and companies stored the way the gateway stores them.

use std::time::Duration;

use context_worker::{Config, LlmApi, LlmConfig};
use queue_core::Enqueued;
use queue_core::testing::eventually;
use service::config::ReconcileConfig;
use service::testing::{Running, TestWorld};
use store::companies::{self, Company, ContextStatus};
use upstream_sim::{Sim, SimConfig};

/// One context test's world, its simulator serving the LLM.
pub type TestApp = TestWorld<Sim>;

/// What the context tests add to their world.
pub trait ContextWorld: Sized {
    /// A world on the `context` queue with a default simulator.
    async fn new() -> Self;

    /// A world on the `context` queue with the simulator `sim`.
    async fn with_sim(sim: SimConfig) -> Self;

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and simulator, with fast settings and a 2 s LLM timeout.
    fn config(&self, api: LlmApi) -> Config;

    /// Starts a worker with `config`.
    async fn spawn(&self, config: Config) -> Running;

    /// Stores a company as the gateway does.
    async fn add_company(&self, context: &str, status: ContextStatus) -> Company;

    /// Enqueues its condensation as the gateway does (the row's key, unique
    /// until settled); the new job's id.
    async fn enqueue(&self, company: &Company) -> String;

    async fn company(&self, id: i64) -> Company;

    /// Polls the company until its status is `status`.
    async fn company_until(&self, id: i64, status: ContextStatus) -> Company;
}

impl ContextWorld for TestApp {
    async fn new() -> Self {
        Self::with_sim(SimConfig::default()).await
    }

    async fn with_sim(sim: SimConfig) -> Self {
        let sim = Sim::start(sim).await.expect("the simulator starts");
        TestWorld::for_queue_with_sim(&jobs::CONTEXT, sim).await
    }

    fn config(&self, api: LlmApi) -> Config {
        Config {
            base: self.base_config(),
            worker: self.worker_config(),
            llm: LlmConfig {
                url: self.sim.url(),
                api,
                model: "gpt-oss".into(),
                api_key: None,
                timeout: Duration::from_secs(2),
                answers: context_worker::AnswerRules::default(),
            },
            // The shortest period a repeating job allows; rows pending 500 ms.
            reconcile: ReconcileConfig {
                interval: Duration::from_secs(1),
                after: Duration::from_millis(500),
                batch: 500,
            },
        }
    }

    async fn spawn(&self, config: Config) -> Running {
        Running::spawn(
            context_worker::start(config)
                .await
                .expect("the worker starts"),
        )
    }

    async fn add_company(&self, context: &str, status: ContextStatus) -> Company {
        companies::insert(&mut *self.conn().await, "Acme", context, status)
            .await
            .expect("insert company")
    }

    async fn enqueue(&self, company: &Company) -> String {
        let job = jobs::rows::context_job(company);
        match self
            .redis
            .producer
            .enqueue(&self.queue, job)
            .await
            .expect("enqueue")
        {
            Enqueued::Added { id, .. } | Enqueued::Scheduled { id, .. } => id,
            other => panic!("a new job, not {other:?}"),
        }
    }

    async fn company(&self, id: i64) -> Company {
        companies::get(&mut *self.conn().await, id)
            .await
            .expect("get company")
            .expect("the company exists")
    }

    async fn company_until(&self, id: i64, status: ContextStatus) -> Company {
        eventually(&format!("company {id} is {status:?}"), async || {
            Some(self.company(id).await).filter(|c| c.context_status == status)
        })
        .await
    }
}

/// A business description of about `chars` characters, different per `seed`.
pub fn long_context(chars: usize, seed: usize) -> String {
    let sentences = [
        "Acme Andina sells irrigation equipment to farms in the Andean valleys.",
        "It was founded in 1998 in Cochabamba and now has branches in La Paz and Santa Cruz.",
        "The company installs drip systems, pumps and solar panels, and trains farmers to keep them.",
        "Most customers grow potatoes, quinoa and maize on plots of two to twenty hectares.",
        "A service team visits each installation twice a year and answers calls within a day.",
        "Financing is offered through partner banks, with payments after each harvest.",
    ];
    let mut text = format!("Company number {seed}. ");
    let mut i = seed;
    while text.chars().count() < chars {
        text.push_str(sentences[i % sentences.len()]);
        text.push(' ');
        i += 1;
    }
    text.trim_end().to_owned()
}
