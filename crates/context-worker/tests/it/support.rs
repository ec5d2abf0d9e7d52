//! One test's world: its Redis prefix, its database and an LLM simulator, and
//! companies stored the way the gateway stores them.

use std::time::Duration;

use context_worker::{Config, LlmApi, LlmConfig};
use queue_core::testing::{TestRedis, eventually};
use queue_core::{Enqueued, Queue};
use service::config::ReconcileConfig;
use service::testing::Running;
use store::companies::{self, Company, ContextStatus};
use store::testing::TestDb;
use upstream_sim::{Sim, SimConfig};

pub struct TestApp {
    pub redis: TestRedis,
    pub db: TestDb,
    pub queue: Queue,
    pub sim: Sim,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_sim(SimConfig::default()).await
    }

    pub async fn with_sim(sim: SimConfig) -> Self {
        let redis = TestRedis::new().await;
        Self {
            queue: redis.queue(jobs::CONTEXT.name),
            db: TestDb::new().await,
            sim: Sim::start(sim).await.expect("the simulator starts"),
            redis,
        }
    }

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and simulator, with fast settings and a 2 s LLM timeout.
    pub fn config(&self, api: LlmApi) -> Config {
        Config {
            base: service::testing::base_config(&self.redis.prefix, &self.db.url),
            worker: service::testing::fast_worker_config(&jobs::CONTEXT),
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

    pub async fn spawn(&self, config: Config) -> Running {
        Running::spawn(
            context_worker::start(config)
                .await
                .expect("the worker starts"),
        )
    }

    /// Stores a company as the gateway does.
    pub async fn add_company(&self, context: &str, status: ContextStatus) -> Company {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        companies::insert(&mut conn, "Acme", context, status)
            .await
            .expect("insert company")
    }

    /// Enqueues its condensation as the gateway does (the row's key, unique
    /// until settled).
    pub async fn enqueue(&self, company: &Company) -> String {
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

    pub async fn company(&self, id: i64) -> Company {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        companies::get(&mut conn, id)
            .await
            .expect("get company")
            .expect("the company exists")
    }

    /// Polls the company until its status is `status`.
    pub async fn company_until(&self, id: i64, status: ContextStatus) -> Company {
        eventually(&format!("company {id} is {status:?}"), async || {
            Some(self.company(id).await).filter(|c| c.context_status == status)
        })
        .await
    }

    pub async fn finish(self) {
        self.sim.stop().await;
        self.redis.finish().await;
        self.db.cleanup().await;
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
