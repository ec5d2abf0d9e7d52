//! The BNB "QR Simple" adapter against the simulator's BNB mode over real
//! HTTP: the token's life, renewal on a 401, refusals in the body, the
//! statusId mapping, the image's shapes, cancel and the day's list.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use payments::bnb::{DEFAULT_GLOSS, bolivia};
use payments::{Bank, BankError, BnbBank, BnbConfig, CreateQr, QrStatus};
use queue_core::testing::eventually;
use service::Secret;
use store::payments::{Currency, PaymentStatus};
use upstream_sim::bank::PLACEHOLDER_PNG_BASE64;
use upstream_sim::bank::bnb::{DEFAULT_ACCOUNT_ID, DEFAULT_AUTHORIZATION_ID};
use upstream_sim::{BankKnobs, Sim, SimConfig};

async fn sim() -> Sim {
    Sim::start(SimConfig::default())
        .await
        .expect("the simulator starts")
}

fn config(sim: &Sim) -> BnbConfig {
    BnbConfig::new(&sim.url(), DEFAULT_ACCOUNT_ID, DEFAULT_AUTHORIZATION_ID)
}

fn bnb(config: BnbConfig) -> BnbBank {
    BnbBank::new(config, Duration::from_secs(5)).expect("a client")
}

fn qr(script: &str) -> CreateQr {
    CreateQr {
        amount_cents: 15_050,
        currency: Currency::Bob,
        description: format!("Pedido 7 script:{script}"),
        expires_at: None,
    }
}

fn knobs(sim: &Sim, change: impl FnOnce(&mut BankKnobs)) {
    sim.bank().update_knobs(change);
}

#[tokio::test]
async fn a_qr_is_created_with_the_banks_id_and_image_and_expires_with_its_bolivian_day() {
    let sim = sim().await;
    let bank = bnb(config(&sim));
    let created = bank.create_qr(&qr("pending")).await.expect("created");
    assert_eq!(created.status, PaymentStatus::Pending);
    assert!(created.qr_id.parse::<u64>().is_ok(), "{}", created.qr_id);
    assert_eq!(created.image_base64, PLACEHOLDER_PNG_BASE64);
    let at_bank = sim.bank().qr(&created.qr_id).expect("the bank has it");
    assert_eq!(
        (
            at_bank.amount.as_str(),
            at_bank.currency.as_str(),
            at_bank.single_use
        ),
        ("150.50", "BOB", true)
    );
    assert_eq!(created.expires_at, at_bank.expires_at);
    // The end of tomorrow in La Paz: one day's default life, rounded up to the day.
    let tomorrow = (Utc::now() + chrono::Duration::days(1))
        .with_timezone(&bolivia())
        .date_naive();
    assert_eq!(
        (created.expires_at - chrono::Duration::seconds(1))
            .with_timezone(&bolivia())
            .date_naive(),
        tomorrow
    );
    // BNB requires a gloss: a payment without a description gets one.
    let bare = bank
        .create_qr(&CreateQr {
            description: String::new(),
            ..qr("pending")
        })
        .await
        .expect("created");
    assert_eq!(
        sim.bank().qr(&bare.qr_id).expect("known").gloss,
        DEFAULT_GLOSS
    );
    // The same image when the bank sends it as an array of bytes.
    knobs(&sim, |k| k.bnb_image_as_bytes = true);
    let bytes = bank.create_qr(&qr("pending")).await.expect("created");
    assert_eq!(bytes.image_base64, PLACEHOLDER_PNG_BASE64);
    sim.stop().await;
}

#[tokio::test]
async fn every_status_id_maps_and_a_paid_qr_brings_its_voucher() {
    let sim = sim().await;
    let bank = bnb(config(&sim));
    let read = async |script: &str| {
        let created = bank.create_qr(&qr(script)).await.expect("created");
        (created.qr_id.clone(), bank.qr_status(&created.qr_id).await)
    };
    for (script, status) in [
        ("pending", PaymentStatus::Pending),
        ("processing", PaymentStatus::Pending),
        ("active", PaymentStatus::Pending),
        ("expired", PaymentStatus::Expired),
        ("cancelled", PaymentStatus::Expired),
    ] {
        let (_, answer) = read(script).await;
        assert_eq!(answer.expect(script), QrStatus::from(status), "{script}");
    }
    let (paid, answer) = read("completed").await;
    let voucher = sim.bank().qr(&paid).expect("known").voucher_id;
    assert_eq!(
        answer.expect("paid"),
        QrStatus {
            status: PaymentStatus::Completed,
            voucher_id: Some(voucher)
        }
    );
    let (_, failed) = read("error").await;
    let failed = failed.expect_err("statusId 4");
    assert!(
        matches!(failed, BankError::QrFailed(_)) && failed.is_permanent(),
        "{failed:?}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn one_token_serves_many_calls_and_concurrent_calls_fetch_it_once() {
    let sim = sim().await;
    let bank = Arc::new(bnb(config(&sim)));
    let created = bank.create_qr(&qr("pending")).await.expect("created");
    for _ in 0..5 {
        bank.qr_status(&created.qr_id).await.expect("status");
    }
    assert_eq!(sim.bank().bnb_tokens_issued(), 1);

    // A fresh adapter, twenty checks at once: one token call.
    let cold = Arc::new(bnb(config(&sim)));
    let checks = (0..20).map(|_| {
        let (cold, id) = (cold.clone(), created.qr_id.clone());
        tokio::spawn(async move { cold.qr_status(&id).await })
    });
    for check in checks.collect::<Vec<_>>() {
        check.await.expect("joined").expect("status");
    }
    assert_eq!(sim.bank().bnb_tokens_issued(), 2);

    // Every token revoked: twenty checks refused at once renew it once.
    sim.bank().revoke_bnb_tokens();
    let checks = (0..20).map(|_| {
        let (cold, id) = (cold.clone(), created.qr_id.clone());
        tokio::spawn(async move { cold.qr_status(&id).await })
    });
    for check in checks.collect::<Vec<_>>() {
        check
            .await
            .expect("joined")
            .expect("status after one renewal");
    }
    let stats = sim.bank().stats();
    assert_eq!(stats.tokens_issued, 3, "{stats:?}");
    assert_eq!(stats.unauthorized, 20, "{stats:?}");
    sim.stop().await;
}

#[tokio::test]
async fn a_token_is_renewed_before_its_exp_or_after_the_configured_lifetime() {
    let sim = sim().await;
    knobs(&sim, |k| k.bnb_token_ttl = Duration::from_secs(2));
    let bank = bnb(config(&sim));
    let created = bank.create_qr(&qr("pending")).await.expect("created");
    eventually("the token is renewed as its exp nears", async || {
        bank.qr_status(&created.qr_id).await.expect("status");
        (sim.bank().bnb_tokens_issued() == 2).then_some(())
    })
    .await;
    assert_eq!(
        sim.bank().stats().unauthorized,
        0,
        "renewed before expiring"
    );

    // A token without `exp` lives BNB_TOKEN_LIFETIME.
    knobs(&sim, |k| {
        k.bnb_token_exp = false;
        k.bnb_token_ttl = Duration::from_secs(3600);
    });
    let short = bnb(BnbConfig {
        token_lifetime: Duration::from_millis(500),
        ..config(&sim)
    });
    let before = sim.bank().bnb_tokens_issued();
    eventually(
        "the token is renewed after its configured lifetime",
        async || {
            short.qr_status(&created.qr_id).await.expect("status");
            (sim.bank().bnb_tokens_issued() == before + 2).then_some(())
        },
    )
    .await;
    assert_eq!(sim.bank().stats().unauthorized, 0);
    sim.stop().await;
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_a_second_401_is_an_error() {
    let sim = sim().await;
    let bank = bnb(config(&sim));
    let created = bank.create_qr(&qr("pending")).await.expect("created");
    assert_eq!(sim.bank().bnb_tokens_issued(), 1);

    knobs(&sim, |k| k.bnb_unauthorized_next = 1);
    let answer = bank
        .qr_status(&created.qr_id)
        .await
        .expect("after a renewal");
    assert_eq!(answer.status, PaymentStatus::Pending);
    assert_eq!(sim.bank().bnb_tokens_issued(), 2);

    knobs(&sim, |k| k.bnb_unauthorized_next = 2);
    let refused = bank.qr_status(&created.qr_id).await.expect_err("twice");
    assert!(
        matches!(&refused, BankError::Status { status: 401, body } if body.contains("fresh")),
        "{refused:?}"
    );
    assert!(refused.is_permanent());
    assert_eq!(sim.bank().bnb_tokens_issued(), 3, "one renewal, not a loop");
    assert_eq!(sim.bank().stats().unauthorized, 3);
    sim.stop().await;
}

#[tokio::test]
async fn refusals_in_the_body_and_bad_credentials_are_clear_permanent_errors() {
    let sim = sim().await;
    let bank = bnb(config(&sim));
    let created = bank.create_qr(&qr("pending")).await.expect("created");
    knobs(&sim, |k| k.bnb_refuse_next = 1);
    match bank.qr_status(&created.qr_id).await {
        Err(e @ BankError::Rejected { .. }) => {
            assert!(e.is_permanent());
            assert!(e.to_string().contains("simulado"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match bank.qr_status("999999").await {
        Err(e @ BankError::Rejected { .. }) => assert!(e.to_string().contains("no encontrado")),
        other => panic!("{other:?}"),
    }

    let wrong = bnb(BnbConfig {
        authorization_id: Secret::new("not-it"),
        ..config(&sim)
    });
    match wrong.create_qr(&qr("pending")).await {
        Err(BankError::Rejected { field, message }) => {
            assert_eq!(field, "BNB_ACCOUNT_ID");
            assert!(message.contains("Credenciales"), "{message}");
            assert!(!message.contains("not-it"), "never the secret: {message}");
        }
        other => panic!("{other:?}"),
    }
    // Trouble at the bank is retried.
    sim.bank().fail_next(1);
    let down = bank.qr_status(&created.qr_id).await.expect_err("500");
    assert!(!down.is_permanent(), "{down:?}");
    sim.stop().await;
}

#[tokio::test]
async fn a_qr_is_cancelled_unless_it_is_paid_and_the_days_list_shows_them() {
    let sim = sim().await;
    let bank = bnb(config(&sim));
    let open = bank.create_qr(&qr("pending")).await.expect("created");
    bank.cancel_qr(&open.qr_id).await.expect("cancelled");
    assert_eq!(
        bank.qr_status(&open.qr_id).await.expect("status").status,
        PaymentStatus::Expired,
        "no longer payable"
    );
    let paid = bank.create_qr(&qr("pending")).await.expect("created");
    assert!(sim.bank().pay(&paid.qr_id));
    let refused = bank.cancel_qr(&paid.qr_id).await.expect_err("paid");
    assert!(matches!(refused, BankError::AlreadyPaid), "{refused:?}");
    let unknown = bank.cancel_qr("999999").await.expect_err("unknown");
    assert!(matches!(unknown, BankError::Rejected { .. }), "{unknown:?}");

    let today = Utc::now().with_timezone(&bolivia()).date_naive();
    let listed = bank.qrs_generated_on(today).await.expect("the list");
    let ids: Vec<&str> = listed.iter().map(|q| q.qr_id.as_str()).collect();
    assert_eq!(ids, [open.qr_id.as_str(), paid.qr_id.as_str()]);
    assert_eq!(listed[1].status, Some(PaymentStatus::Completed));
    assert_eq!(listed[0].amount.as_deref(), Some("150.50"));
    let yesterday = today.pred_opt().expect("a day before");
    assert!(
        bank.qrs_generated_on(yesterday)
            .await
            .expect("empty")
            .is_empty()
    );
    sim.stop().await;
}
