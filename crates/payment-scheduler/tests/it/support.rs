//! What the payment tests add to the owners' test support
//! (`service::testing`'s world with a bank simulator): the scheduler's config
//! for the world, payments created the way the gateway creates them, and the
//! provider matrix: [`both_providers!`] runs one test body against the
//! simulator's own contract and against its BNB "QR Simple" mode.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use ::payments::{Bank, BnbConfig, CreateQr, schedule};
use chrono::Utc;
use payment_scheduler::config::{BankConfig, CleanupConfig, Config, ScheduleConfig};
use queue_core::Every;
use queue_core::testing::eventually;
use service::config::ReconcileConfig;
use service::testing::{Running, TestWorld};
use store::payments::{self, CheckRecord, Currency, Movement, NewPayment, Payment, PaymentStatus};
use upstream_sim::bank::bnb::{DEFAULT_ACCOUNT_ID, DEFAULT_AUTHORIZATION_ID};
use upstream_sim::{Sim, SimConfig};

/// The bank a test's payments are made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The simulator's own contract (`BANK_PROVIDER=sim`).
    Sim,
    /// The simulator's BNB "QR Simple" mode (`BANK_PROVIDER=bnb`).
    Bnb,
}

impl Provider {
    /// The status a check reads for a script step: BNB has one statusId
    /// (1) for pending, processing and active, and none for cancelled (a
    /// cancelled QR reads 3, expired). docs/design.md has the mapping.
    pub fn seen(self, step: PaymentStatus) -> PaymentStatus {
        match (self, step) {
            (Provider::Sim, s) => s,
            (Provider::Bnb, PaymentStatus::Processing | PaymentStatus::Active) => {
                PaymentStatus::Pending
            }
            (Provider::Bnb, PaymentStatus::Cancelled) => PaymentStatus::Expired,
            (Provider::Bnb, s) => s,
        }
    }
}

/// Runs each named `async fn name(provider: Provider)` against both
/// providers, as the tests `name::sim` and `name::bnb`.
macro_rules! both_providers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sim() {
                super::$name(crate::support::Provider::Sim).await
            }

            #[tokio::test]
            async fn bnb() {
                super::$name(crate::support::Provider::Bnb).await
            }
        }
    )*};
}
pub(crate) use both_providers;

/// The simulator and the provider its payments use (derefs to the simulator).
pub struct BankSim {
    pub provider: Provider,
    sim: Sim,
}

impl Deref for BankSim {
    type Target = Sim;

    fn deref(&self) -> &Sim {
        &self.sim
    }
}

/// One payment test's world, its simulator serving the bank.
pub type TestApp = TestWorld<BankSim>;

/// What the payment tests add to their world.
pub trait PaymentWorld: Sized {
    /// A world on the `payment-checks` queue (with its lanes) and a bank
    /// simulator, spoken to through its own contract.
    async fn new() -> Self {
        Self::with(Provider::Sim).await
    }

    /// [`PaymentWorld::new`] with the payments made at `provider`.
    async fn with(provider: Provider) -> Self;

    fn bank_config(&self) -> BankConfig;

    /// The configured bank, as the gateway and the scheduler build it.
    fn bank(&self) -> Arc<dyn Bank>;

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and simulator, with every delay in milliseconds.
    fn config(&self) -> Config;

    /// Starts a scheduler with `config`.
    async fn spawn(&self, config: Config) -> Running;

    /// Creates a QR at the bank that follows `script` (`pending,completed`) and
    /// stores its payment, `pending` and due at once, without enqueueing its
    /// check. (The simulator answers a creation with the script's first step;
    /// a new QR is unpaid whatever the script.)
    async fn add_payment(&self, script: &str) -> Payment;

    /// Creates a payment as the gateway's `POST /api/payments/qr` does, for a
    /// QR that follows `script` (its first step is the status at creation).
    async fn create_as_the_gateway(&self, script: &str) -> Payment;

    /// Enqueues the payment's next check as the gateway does; the job's id.
    async fn enqueue_check(&self, payment: &Payment) -> String;

    /// `add_payment` then `enqueue_check`.
    async fn create(&self, script: &str) -> Payment;

    async fn payment(&self, id: i64) -> Payment;

    /// Polls the payment until `done` holds.
    async fn payment_until(&self, id: i64, what: &str, done: impl Fn(&Payment) -> bool) -> Payment;

    async fn history(&self, id: i64) -> Vec<CheckRecord>;

    async fn movements(&self, id: i64) -> Vec<Movement>;

    /// Polls until the payment's checks ended (final status or flagged).
    async fn settled(&self, id: i64) -> Payment;
}

impl PaymentWorld for TestApp {
    async fn with(provider: Provider) -> Self {
        let sim = Sim::start(SimConfig::default())
            .await
            .expect("the simulator starts");
        TestWorld::for_queue_with_sim(&jobs::PAYMENT_CHECKS, BankSim { provider, sim }).await
    }

    fn bank_config(&self) -> BankConfig {
        let bnb = (self.sim.provider == Provider::Bnb).then(|| {
            BnbConfig::new(
                &self.sim.url(),
                DEFAULT_ACCOUNT_ID,
                DEFAULT_AUTHORIZATION_ID,
            )
        });
        BankConfig {
            url: self.sim.url(),
            api_key: None,
            timeout: Duration::from_secs(2),
            bnb,
        }
    }

    fn bank(&self) -> Arc<dyn Bank> {
        ::payments::connect(&self.bank_config()).expect("bank client")
    }

    fn config(&self) -> Config {
        let mut worker = self.worker_config();
        worker.max_attempts = payment_scheduler::config::DEFAULT_MAX_ATTEMPTS;
        Config {
            base: self.base_config(),
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

    async fn spawn(&self, config: Config) -> Running {
        Running::spawn(
            payment_scheduler::start(config)
                .await
                .expect("the scheduler starts"),
        )
    }

    async fn add_payment(&self, script: &str) -> Payment {
        let created = self
            .bank()
            .create_qr(&CreateQr {
                amount_cents: 12_550,
                currency: Currency::Bob,
                description: format!("Pedido script:{script}"),
                expires_at: None,
            })
            .await
            .expect("the bank creates the QR");
        payments::insert(
            &mut *self.conn().await,
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

    async fn create_as_the_gateway(&self, script: &str) -> Payment {
        let created = ::payments::create_payment(
            &self.db.pool,
            self.bank().as_ref(),
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
            self.enqueue_job(job).await;
        }
        created.payment
    }

    async fn enqueue_check(&self, payment: &Payment) -> String {
        let job = schedule::next_check_job(payment).expect("a payment still checked");
        self.enqueue_job(job).await
    }

    async fn create(&self, script: &str) -> Payment {
        let p = self.add_payment(script).await;
        self.enqueue_check(&p).await;
        p
    }

    async fn payment(&self, id: i64) -> Payment {
        payments::get(&mut *self.conn().await, id)
            .await
            .expect("get payment")
            .expect("the payment exists")
    }

    async fn payment_until(&self, id: i64, what: &str, done: impl Fn(&Payment) -> bool) -> Payment {
        eventually(what, async || Some(self.payment(id).await).filter(&done)).await
    }

    async fn history(&self, id: i64) -> Vec<CheckRecord> {
        payments::checks(&mut *self.conn().await, id)
            .await
            .expect("history")
    }

    async fn movements(&self, id: i64) -> Vec<Movement> {
        payments::movements(&mut *self.conn().await, id)
            .await
            .expect("movements")
    }

    async fn settled(&self, id: i64) -> Payment {
        self.payment_until(id, "the payment is no longer checked", |p| {
            p.next_check_at.is_none()
        })
        .await
    }
}

/// A status script of the simulator.
pub fn statuses(history: &[CheckRecord]) -> Vec<Option<PaymentStatus>> {
    history.iter().map(|c| c.status).collect()
}
