//! The `users` table as the Wispro sync sees it: find a customer's user by
//! Wispro id or by the key of its identity number (`id_number_key`, generated
//! by the database from `id_number`: letter and digits without leading zeros,
//! see migration 0007); create one with a password hash; update the contact
//! data, never the password nor a number the user already has.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Result, StoreError};

/// A stored user (the password hash is never serialised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub id_number: Option<String>,
    /// `id_number` normalised (`V12345678`), kept by the database; `None` when
    /// it is no identity number.
    pub id_number_key: Option<String>,
    pub id_wispro: Option<String>,
    pub zone: Option<String>,
    pub phone: Option<String>,
    pub phone_mobile: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    #[serde(skip)]
    pub password: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a sync writes of a customer (everything but the password).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerData<'a> {
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub id_number: Option<&'a str>,
    pub id_wispro: &'a str,
    pub zone: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub phone_mobile: Option<&'a str>,
    pub address: Option<&'a str>,
    pub city: Option<&'a str>,
    pub state: Option<&'a str>,
}

/// `sqlx::query_as!` of [`User`] rows: `$head` (`SELECT ` or
/// `... RETURNING `), the columns, then `$tail` (the checked macros take only
/// literal SQL).
macro_rules! query_users {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            User,
            $head
                + "id, name, email, id_number, id_number_key, id_wispro, zone, phone,
                   phone_mobile, address, city, state, password, created_at, updated_at"
                + $tail
            $(, $arg)*
        )
    };
}
// Also for `crate::lists`, which pages the same rows.
pub(crate) use query_users;

/// Calls the checked macro `$m` with its leading arguments `$head`, then the
/// ten columns of customer `$data` (`$1` to `$10` in the SQL, in
/// [`CustomerData`]'s order) and `$last` (`$11`): an insert and an update
/// write the same columns.
macro_rules! with_customer {
    ($($m:ident)::+ !($($head:tt)*), $data:ident, $last:expr) => {
        $($m)::+!(
            $($head)*,
            $data.name,
            $data.email,
            $data.id_number,
            $data.id_wispro,
            $data.zone,
            $data.phone,
            $data.phone_mobile,
            $data.address,
            $data.city,
            $data.state,
            $last
        )
    };
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<User>> {
    Ok(query_users!("SELECT ", " FROM users WHERE id = $1", id)
        .fetch_optional(conn)
        .await?)
}

/// The user already linked to Wispro client `id_wispro`.
pub async fn by_wispro_id(conn: &mut PgConnection, id_wispro: &str) -> Result<Option<User>> {
    Ok(
        query_users!("SELECT ", " FROM users WHERE id_wispro = $1", id_wispro)
            .fetch_optional(conn)
            .await?,
    )
}

/// Users whose identity number has one of `keys` (`id_number_key`: the letter
/// and the digits without leading zeros, e.g. `V12345678` or `12345678`), at
/// most `limit`, oldest first. Through the index on the key.
pub async fn by_id_number_keys(
    conn: &mut PgConnection,
    keys: &[String],
    limit: i64,
) -> Result<Vec<User>> {
    Ok(query_users!(
        "SELECT ",
        " FROM users WHERE id_number_key = ANY($1) ORDER BY id LIMIT $2",
        keys,
        limit,
    )
    .fetch_all(conn)
    .await?)
}

/// The key the database gives `raw` (what `users.id_number_key` holds for a
/// user whose `id_number` is `raw`).
pub async fn id_number_key(conn: &mut PgConnection, raw: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar!("SELECT identity_number_key($1)", raw)
        .fetch_one(conn)
        .await?)
}

/// Takes the lock of the identity number whose digits are `digits` until the
/// caller's transaction ends: two writers creating a user for one number
/// take turns, the second finding the first's user. (An advisory lock: no row
/// exists yet to lock.)
pub async fn lock_id_number(conn: &mut PgConnection, digits: &str) -> Result<()> {
    let query = sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        format!("wispro-sync:{digits}")
    );
    crate::execute(conn, query).await?;
    Ok(())
}

/// Creates the user of a Wispro customer with `password_hash`; a Wispro id
/// already linked is [`StoreError::Duplicate`].
pub async fn insert(
    conn: &mut PgConnection,
    data: &CustomerData<'_>,
    password_hash: &str,
) -> Result<User> {
    with_customer!(
        query_users!(
            "INSERT INTO users (name, email, id_number, id_wispro, zone, phone, phone_mobile,
                                address, city, state, password)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
            ""
        ),
        data,
        password_hash
    )
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Writes a customer's data onto user `id`, linking its Wispro id. The
/// password is not a column of this statement, and a user's identity number
/// is only written where it has none (or one that is no identity number): an
/// update never changes a person's number. False when the user is gone.
pub async fn update_from_customer(
    conn: &mut PgConnection,
    id: i64,
    data: &CustomerData<'_>,
) -> Result<bool> {
    let r = with_customer!(
        sqlx::query!(
            "UPDATE users SET name = $1, email = $2,
                    id_number = CASE WHEN id_number_key IS NULL THEN COALESCE($3, id_number)
                                     ELSE id_number END,
                    id_wispro = $4, zone = $5, phone = $6, phone_mobile = $7, address = $8,
                    city = $9, state = $10, updated_at = now()
             WHERE id = $11"
        ),
        data,
        id
    )
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(r.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    fn customer<'a>(id_wispro: &'a str, id_number: Option<&'a str>) -> CustomerData<'a> {
        CustomerData {
            name: "Ana Pérez",
            email: Some("ana@example.com"),
            id_number,
            id_wispro,
            zone: Some("Zona Norte"),
            ..CustomerData::default()
        }
    }

    #[tokio::test]
    async fn users_are_found_by_wispro_id_and_by_the_key_of_their_number_in_any_form() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let mut ids = Vec::new();
        for (id_wispro, number) in [
            ("uuid-a", "V-12.345.678"),
            ("uuid-b", "012345678"),
            ("uuid-c", "912345678"),
            ("uuid-d", "N/A"),
        ] {
            let user = insert(&mut conn, &customer(id_wispro, Some(number)), "$2y$10$x")
                .await
                .expect("insert");
            ids.push(user.id);
        }
        assert_eq!(
            by_wispro_id(&mut conn, "uuid-a")
                .await
                .expect("q")
                .map(|u| u.id),
            Some(ids[0])
        );
        let found = async |conn: &mut PgConnection, keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            by_id_number_keys(conn, &keys, 10)
                .await
                .expect("q")
                .iter()
                .map(|u| u.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(found(&mut conn, &["V12345678"]).await, [ids[0]]);
        assert_eq!(found(&mut conn, &["12345678"]).await, [ids[1]]);
        assert_eq!(
            found(&mut conn, &["12345678", "V12345678", "E12345678"]).await,
            [ids[0], ids[1]]
        );
        // Whole numbers only: the digits of one ending another is no match.
        assert!(found(&mut conn, &["2345678"]).await.is_empty());
        let garbage = get(&mut conn, ids[3]).await.expect("get").expect("row");
        assert_eq!(garbage.id_number_key, None);
        assert_eq!(
            id_number_key(&mut conn, "v 012.345.678")
                .await
                .expect("key"),
            Some("V12345678".to_owned())
        );
        let dup = insert(&mut conn, &customer("uuid-a", None), "x").await;
        assert!(matches!(dup, Err(StoreError::Duplicate { .. })), "{dup:?}");
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn the_migration_gives_rows_written_before_it_the_key_of_their_number() {
        let db = TestDb::new().await;
        // The database as it was before migration 7, with a legacy table.
        sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            .execute(&db.pool)
            .await
            .expect("an empty schema");
        let mut before = sqlx::migrate!("./migrations");
        before.migrations = before
            .migrations
            .iter()
            .filter(|m| m.version < 7)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        before.run(&db.pool).await.expect("migrations 1 to 6");
        let legacy = [
            ("V-12.345.678", Some("V12345678")),
            ("012345678", Some("12345678")),
            ("e 84.123.456", Some("E84123456")),
            ("J-30.123.456-7", Some("J301234567")),
            ("sin cedula", None),
        ];
        for (number, _) in legacy {
            sqlx::query("INSERT INTO users (name, id_number, password) VALUES ('Legacy', $1, 'x')")
                .bind(number)
                .execute(&db.pool)
                .await
                .expect("a legacy row");
        }
        crate::migrate(&db.pool).await.expect("migration 7");
        let keys: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id_number, id_number_key FROM users ORDER BY id")
                .fetch_all(&db.pool)
                .await
                .expect("keys");
        let expected: Vec<(String, Option<String>)> = legacy
            .iter()
            .map(|(n, k)| ((*n).to_owned(), k.map(str::to_owned)))
            .collect();
        assert_eq!(keys, expected);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn an_update_from_wispro_never_touches_the_password() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let u = insert(
            &mut conn,
            &customer("uuid-a", Some("V-1")),
            "$2y$10$original",
        )
        .await
        .expect("insert");
        let newer = CustomerData {
            name: "Ana María Pérez",
            zone: Some("Zona Sur"),
            id_number: None,
            ..customer("uuid-a", None)
        };
        assert!(
            update_from_customer(&mut conn, u.id, &newer)
                .await
                .expect("update")
        );
        let after = get(&mut conn, u.id).await.expect("get").expect("row");
        assert_eq!(after.password, "$2y$10$original");
        assert_eq!(
            (after.name.as_str(), after.zone.as_deref()),
            ("Ana María Pérez", Some("Zona Sur"))
        );
        assert_eq!(
            after.id_number.as_deref(),
            Some("V-1"),
            "a missing number keeps the stored one"
        );
        // A number is written where the user has none usable, never over one.
        for (stored, sent, kept) in [
            ("V-12.345.678", "V-12345679", "V-12.345.678"),
            ("N/A", "V-12345679", "V-12345679"),
        ] {
            let u = insert(&mut conn, &customer("uuid-n", Some(stored)), "x")
                .await
                .expect("insert");
            let newer = customer("uuid-n", Some(sent));
            assert!(
                update_from_customer(&mut conn, u.id, &newer)
                    .await
                    .expect("update")
            );
            let after = get(&mut conn, u.id).await.expect("get").expect("row");
            assert_eq!(
                after.id_number.as_deref(),
                Some(kept),
                "{stored} then {sent}"
            );
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(u.id)
                .execute(&mut *conn)
                .await
                .expect("delete");
        }
        assert!(
            !serde_json::to_string(&after)
                .expect("json")
                .contains("original")
        );
        drop(conn);
        db.cleanup().await;
    }
}
