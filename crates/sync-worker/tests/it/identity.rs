//! One person, one user: a users table pre-seeded as a legacy system leaves it
//! (numbers bare, dotted, prefixed, with leading zeros, held twice), synced
//! against Wispro customers written by hand, apart from the simulator's
//! generator. A number matches only the same number; two users with it are
//! ambiguous; a company's J- number is not a person's V- number.

use sync_worker::idnumber::{self, IdNumber};
use upstream_sim::wispro::{Client, dataset};

use crate::world::{SEED, SEEDED_PASSWORD, SyncWorld, World};

/// What the run must do with a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Link and update the only legacy user of the case.
    Update,
    /// Create a user; every legacy user of the case stays unlinked.
    Create,
    /// Skip it as ambiguous; every legacy user of the case stays unlinked.
    Ambiguous,
}

/// (the legacy users' numbers, the customer's number, what must happen)
const CASES: [(&[&str], &str, Want); 12] = [
    // A different person whose digits end the legacy number: never merged.
    (&["12345678"], "2345678", Want::Create),
    // Stored dotted with a prefix, sent bare or prefixed: the same number.
    (&["V-21.345.678"], "21345678", Want::Update),
    (&["E-84.123.456"], "E-84123456", Want::Update),
    // Leading zeros on either side.
    (&["012345679"], "12345679", Want::Update),
    (&["13345678"], "V-013.345.678", Want::Update),
    // A bare legacy number is a V- or E- number with those digits.
    (&["84345678"], "E-84345678", Want::Update),
    // Two users with one number: neither is updated.
    (&["14345678", "V-14.345.678"], "V-14345678", Want::Ambiguous),
    (&["V-15345678", "E-15345678"], "15345678", Want::Ambiguous),
    // A company's RIF, dotted with its check digit, is an identity number.
    (&["J-30.123.456-7"], "J-301234567", Want::Update),
    // A company is not the person whose V- number has its digits.
    (&["V-40123456"], "J-40123456", Want::Create),
    // Government bodies and passports are identity numbers too.
    (&[], "G-20000001-1", Want::Create),
    (&[], "P-12345000", Want::Create),
];

/// Clients of the generator with every field fine, their numbers replaced.
fn customers(numbers: &[&str]) -> Vec<Client> {
    dataset(100, SEED)
        .into_iter()
        .filter(|c| c.kind.is_clean())
        .zip(numbers)
        .map(|(c, number)| Client {
            national_identification_number: Some((*number).to_owned()),
            cedula: None,
            ..c
        })
        .collect()
}

#[tokio::test]
async fn legacy_users_are_found_by_their_number_in_any_form_and_never_merged_with_another_person() {
    let world = World::new().await;
    let mut numbers: Vec<&str> = CASES.iter().map(|(_, number, _)| *number).collect();
    // And a customer already linked whose number changed in Wispro.
    numbers.push("V-16345679");
    let clients = customers(&numbers);
    world.sim.wispro().set_clients(clients.clone());
    let mut legacy: Vec<Vec<i64>> = Vec::new();
    for (numbers, _, _) in CASES {
        let mut ids = Vec::new();
        for number in numbers {
            ids.push(world.seed_user(number, None).await);
        }
        legacy.push(ids);
    }
    let relinked = clients.last().expect("the linked customer");
    let linked = world.seed_user("V-16345678", Some(&relinked.id)).await;

    let worker = world
        .spawn(world.config(upstream_sim::wispro::DEFAULT_TOKEN))
        .await;
    let id = world.start_run().await;
    let run = world.run_until_done(id).await;
    let count = |want| CASES.iter().filter(|(_, _, w)| *w == want).count() as i32;
    assert_eq!(
        (run.created, run.updated, run.skipped, run.errors),
        (
            count(Want::Create),
            count(Want::Update) + 1,
            count(Want::Ambiguous),
            0
        ),
        "{:#?}",
        run.error_samples.0
    );
    let ambiguous = run
        .error_samples
        .0
        .iter()
        .filter(|s| s.contains("ambiguous"))
        .count();
    assert_eq!(ambiguous, 2, "{:#?}", run.error_samples.0);

    for ((seeded, number, want), (client, ids)) in CASES.iter().zip(clients.iter().zip(&legacy)) {
        let case = format!("{seeded:?} and customer {number}");
        let mut conn = world.conn().await;
        let user = store::users::by_wispro_id(&mut conn, &client.id)
            .await
            .expect("by Wispro id");
        drop(conn);
        for (i, legacy_id) in ids.iter().enumerate() {
            let legacy_user = world.user(*legacy_id).await;
            assert_eq!(legacy_user.password, SEEDED_PASSWORD, "{case}");
            assert_eq!(
                legacy_user.id_number.as_deref(),
                Some(seeded[i]),
                "{case}: the stored number is never rewritten"
            );
            let is_the_match = user.as_ref().is_some_and(|u| u.id == *legacy_id);
            assert_eq!(is_the_match, *want == Want::Update, "{case}");
            if *want != Want::Update {
                assert_eq!(legacy_user.id_wispro, None, "{case}: left alone");
            }
        }
        match want {
            Want::Update => assert!(user.is_some(), "{case}"),
            Want::Ambiguous => assert!(user.is_none(), "{case}: never applied"),
            Want::Create => {
                let user = user.unwrap_or_else(|| panic!("{case}: a user created"));
                let digits: String = number.chars().filter(char::is_ascii_digit).collect();
                assert!(
                    bcrypt::verify(&digits, &user.password).expect("a bcrypt hash"),
                    "{case}: the password is the number's digits"
                );
            }
        }
    }
    let relinked_user = world.user(linked).await;
    assert_eq!(relinked_user.name, relinked.name.clone().expect("a name"));
    assert_eq!(
        relinked_user.id_number.as_deref(),
        Some("V-16345678"),
        "an update never changes a user's number"
    );
    let seeded = legacy.iter().map(Vec::len).sum::<usize>() + 1;
    assert_eq!(
        world.user_count().await,
        (seeded + count(Want::Create) as usize) as i64
    );
    worker.stop().await;
    world.finish().await;
}

#[tokio::test]
async fn the_database_keys_every_written_form_of_a_number_as_the_sync_does() {
    let db = store::testing::TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("conn");
    let mut forms: Vec<String> = [
        "12345678",
        "012345678",
        "V-12.345.678",
        "v 012 345 678",
        "V12345678",
        "E-84.123.456",
        "J-30.123.456-7",
        "g-20000001-1",
        "P-12345000",
        "12\u{a0}345\u{a0}678",
        "\t12345678\r\n",
        "0012-345-678",
        "1234567890",
        "N/A",
        "V-",
        "0",
        "00001234",
        "12345678901",
        "X-12345678",
        "VE12345678",
        "P-AB123456",
        "sin cedula",
        "--",
    ]
    .map(str::to_owned)
    .to_vec();
    // And every form the simulator's generator writes.
    forms.extend(
        dataset(300, SEED)
            .into_iter()
            .filter_map(|c| c.national_identification_number),
    );
    for raw in forms {
        let rust = match idnumber::parse(Some(&raw)) {
            IdNumber::Usable(id) => Some(id.key()),
            IdNumber::Missing | IdNumber::Unusable => None,
        };
        let sql = store::users::id_number_key(&mut conn, &raw)
            .await
            .expect("the database's key");
        assert_eq!(sql, rust, "{raw:?}");
    }
    drop(conn);
    db.cleanup().await;
}
