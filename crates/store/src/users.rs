//! The `users` table as the Wispro sync sees it: find a customer's user by
//! Wispro id, by id number in any of its forms, or by the replaced system's
//! suffix match; create one with a password hash; update the contact data,
//! never the password.

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

macro_rules! columns {
    () => {
        "id, name, email, id_number, id_wispro, zone, phone, phone_mobile, address, city, \
         state, password, created_at, updated_at"
    };
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<User>> {
    Ok(
        sqlx::query_as::<_, User>(concat!("SELECT ", columns!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The user already linked to Wispro client `id_wispro`.
pub async fn by_wispro_id(conn: &mut PgConnection, id_wispro: &str) -> Result<Option<User>> {
    Ok(sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        columns!(),
        " FROM users WHERE id_wispro = $1"
    ))
    .bind(id_wispro)
    .fetch_optional(conn)
    .await?)
}

/// Users whose stored id number is exactly one of `forms` (the caller passes
/// the bare, `V-` and `E-` forms of a normalised number), at most `limit`.
pub async fn by_id_number_forms(
    conn: &mut PgConnection,
    forms: &[String],
    limit: i64,
) -> Result<Vec<User>> {
    Ok(sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        columns!(),
        " FROM users WHERE id_number = ANY($1) ORDER BY id LIMIT $2"
    ))
    .bind(forms)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Users whose stored id number ends with `digits` (the replaced system's
/// `LIKE '%digits'`), at most `limit`: the caller applies it only when exactly
/// one user comes back. Through the index on the reversed number.
pub async fn by_id_number_suffix(
    conn: &mut PgConnection,
    digits: &str,
    limit: i64,
) -> Result<Vec<User>> {
    let reversed: String = digits.chars().rev().collect();
    let pattern = format!("{}%", escape_like(&reversed));
    Ok(sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        columns!(),
        " FROM users WHERE reverse(id_number) LIKE $1 ORDER BY id LIMIT $2"
    ))
    .bind(pattern)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Creates the user of a Wispro customer with `password_hash`; a Wispro id
/// already linked is [`StoreError::Duplicate`].
pub async fn insert(
    conn: &mut PgConnection,
    data: &CustomerData<'_>,
    password_hash: &str,
) -> Result<User> {
    sqlx::query_as::<_, User>(concat!(
        "INSERT INTO users (name, email, id_number, id_wispro, zone, phone, phone_mobile,
                            address, city, state, password)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
        columns!()
    ))
    .bind(data.name)
    .bind(data.email)
    .bind(data.id_number)
    .bind(data.id_wispro)
    .bind(data.zone)
    .bind(data.phone)
    .bind(data.phone_mobile)
    .bind(data.address)
    .bind(data.city)
    .bind(data.state)
    .bind(password_hash)
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Writes a customer's data onto user `id`, linking its Wispro id. The
/// password is not a column of this statement. False when the user is gone.
pub async fn update_from_customer(
    conn: &mut PgConnection,
    id: i64,
    data: &CustomerData<'_>,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE users SET name = $2, email = $3, id_number = COALESCE($4, id_number),
                id_wispro = $5, zone = $6, phone = $7, phone_mobile = $8, address = $9,
                city = $10, state = $11, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(data.name)
    .bind(data.email)
    .bind(data.id_number)
    .bind(data.id_wispro)
    .bind(data.zone)
    .bind(data.phone)
    .bind(data.phone_mobile)
    .bind(data.address)
    .bind(data.city)
    .bind(data.state)
    .execute(conn)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(r.rows_affected() == 1)
}

/// `text` with LIKE's wildcards and escape taken literally.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
    async fn users_are_found_by_wispro_id_by_any_id_form_and_by_suffix() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let a = insert(
            &mut conn,
            &customer("uuid-a", Some("V-12345678")),
            "$2y$10$a",
        )
        .await
        .expect("insert");
        insert(
            &mut conn,
            &customer("uuid-b", Some("912345678")),
            "$2y$10$b",
        )
        .await
        .expect("insert");
        insert(&mut conn, &customer("uuid-c", Some("7_1%")), "$2y$10$c")
            .await
            .expect("insert");
        assert_eq!(
            by_wispro_id(&mut conn, "uuid-a")
                .await
                .expect("q")
                .map(|u| u.id),
            Some(a.id)
        );
        let forms = ["12345678", "V-12345678", "E-12345678"].map(String::from);
        let found = by_id_number_forms(&mut conn, &forms, 10).await.expect("q");
        assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), [a.id]);
        // "12345678" ends both V-12345678 and 912345678: ambiguous, two come back.
        assert_eq!(
            by_id_number_suffix(&mut conn, "12345678", 2)
                .await
                .expect("q")
                .len(),
            2
        );
        assert_eq!(
            by_id_number_suffix(&mut conn, "912345678", 2)
                .await
                .expect("q")
                .len(),
            1
        );
        // Wildcards in the input are literal.
        assert_eq!(
            by_id_number_suffix(&mut conn, "_1%", 2)
                .await
                .expect("q")
                .len(),
            1
        );
        // Unescaped, "%" would match all three.
        assert_eq!(
            by_id_number_suffix(&mut conn, "%", 10)
                .await
                .expect("q")
                .len(),
            1
        );
        let dup = insert(&mut conn, &customer("uuid-a", None), "x").await;
        assert!(matches!(dup, Err(StoreError::Duplicate { .. })), "{dup:?}");
        drop(conn);
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
        assert!(
            !serde_json::to_string(&after)
                .expect("json")
                .contains("original")
        );
        drop(conn);
        db.cleanup().await;
    }
}
