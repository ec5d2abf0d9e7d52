//! One test's world: its Redis prefix, its database and a bank simulator, and
//! payments created the way the gateway creates them.

use std::time::Duration;

use chrono::Utc;
use payment_scheduler::config::{BankConfig, CleanupConfig, Config, ScheduleConfig};
use payment_scheduler::{Bank, CreateQr, QrBank, schedule};
use queue_core::testing::{TestRedis, eventually};
use queue_core::{Every, Queue};
use service::config::ReconcileConfig;
use service::testing::Running;
use store::payments::{self, CheckRecord, Currency, Movement, NewPayment, Payment, PaymentStatus};
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
        let redis = TestRedis::new().await;
        Self {
            queue: redis.priority_queue(jobs::PAYMENT_CHECKS.name),
            db: TestDb::new().await,
            sim: Sim::start(SimConfig::default())
                .await
                .expect("the simulator starts"),
            redis,
        }
    }

    pub fn bank_config(&self) -> BankConfig {
        BankConfig {
            url: self.sim.url(),
            api_key: None,
            timeout: Duration::from_secs(2),
        }
    }

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and simulator, with every delay in milliseconds.
    pub fn config(&self) -> Config {
        let mut worker = service::testing::fast_worker_config(&jobs::PAYMENT_CHECKS);
        worker.max_attempts = payment_scheduler::config::DEFAULT_MAX_ATTEMPTS;
        Config {
            base: service::testing::base_config(&self.redis.prefix, &self.db.url),
            worker,
            bank: self.bank_config(),
            schedule: ScheduleConfig {
                delay_pending: Duration::from_millis(20),
                delay_processing: Duration::from_millis(30),
                delay_active: Duration::from_millis(40),
                max_checks: 20,
            },
            cleanup: CleanupConfig {
                every: Every::daily_at(3, 0).expect("valid"),
                retention: Duration::from_secs(30 * 86_400),
            },
            // Long enough not to run in tests that are not about it.
            reconcile: ReconcileConfig {
                interval: Duration::from_secs(3600),
                after: Duration::from_secs(3600),
                batch: 500,
            },
        }
    }

    pub async fn spawn(&self, config: Config) -> Running {
        Running::spawn(
            payment_scheduler::start(config)
                .await
                .expect("the scheduler starts"),
        )
    }

    /// Creates a QR at the bank that follows `script` (`pending,completed`) and
    /// stores its payment, `pending` and due at once, without enqueueing its
    /// check. (The simulator answers a creation with the script's first step;
    /// a new QR is unpaid whatever the script.)
    pub async fn add_payment(&self, script: &str) -> Payment {
        let bank = QrBank::new(self.bank_config()).expect("bank client");
        let created = bank
            .create_qr(&CreateQr {
                amount_cents: 12_550,
                currency: Currency::Bob,
                description: format!("Pedido script:{script}"),
                expires_at: None,
            })
            .await
            .expect("the bank creates the QR");
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        payments::insert(
            &mut conn,
            &NewPayment {
                qr_id: &created.qr_id,
                amount_cents: 12_550,
                currency: Currency::Bob,
                description: "Pedido",
                status: PaymentStatus::Pending,
                qr_image_base64: &created.image_base64,
                expires_at: created.expires_at,
                next_check_at: Some(Utc::now()),
            },
        )
        .await
        .expect("insert payment")
    }

    /// Creates a payment as the gateway's `POST /api/payments/qr` does, for a
    /// QR that follows `script` (its first step is the status at creation).
    pub async fn create_as_the_gateway(&self, script: &str) -> Payment {
        let bank = QrBank::new(self.bank_config()).expect("bank client");
        let created = payment_scheduler::create_payment(
            &self.db.pool,
            &bank,
            &CreateQr {
                amount_cents: 12_550,
                currency: Currency::Bob,
                description: format!("Pedido script:{script}"),
                expires_at: None,
            },
        )
        .await
        .expect("the payment is created");
        if let Some(job) = created.first_check {
            self.redis
                .producer
                .enqueue(&self.queue, job)
                .await
                .expect("first check enqueued");
        }
        created.payment
    }

    /// Enqueues the payment's next check as the gateway does; the job's id.
    pub async fn enqueue_check(&self, payment: &Payment) -> String {
        let job = schedule::next_check_job(payment).expect("a payment still checked");
        self.redis
            .producer
            .enqueue(&self.queue, job)
            .await
            .expect("enqueue")
            .id()
            .to_owned()
    }

    /// Waits until the job `job_id` has a completion record.
    pub async fn completed_until(&self, job_id: &str) {
        self.redis.completed_until(&self.queue, job_id).await
    }

    /// `add_payment` then `enqueue_check`.
    pub async fn create(&self, script: &str) -> Payment {
        let p = self.add_payment(script).await;
        self.enqueue_check(&p).await;
        p
    }

    pub async fn payment(&self, id: i64) -> Payment {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        payments::get(&mut conn, id)
            .await
            .expect("get payment")
            .expect("the payment exists")
    }

    pub async fn history(&self, id: i64) -> Vec<CheckRecord> {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        payments::checks(&mut conn, id).await.expect("history")
    }

    pub async fn movements(&self, id: i64) -> Vec<Movement> {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        payments::movements(&mut conn, id).await.expect("movements")
    }

    /// Polls until the payment's checks ended (final status or flagged).
    pub async fn settled(&self, id: i64) -> Payment {
        eventually(&format!("payment {id} is no longer checked"), async || {
            Some(self.payment(id).await).filter(|p| p.next_check_at.is_none())
        })
        .await
    }

    pub async fn finish(self) {
        self.sim.stop().await;
        self.redis.finish().await;
        self.db.cleanup().await;
    }
}

/// A status script of the simulator.
pub fn statuses(history: &[CheckRecord]) -> Vec<Option<PaymentStatus>> {
    history.iter().map(|c| c.status).collect()
}
