//! A database per test: created from `DATABASE_URL`, migrated, dropped on `cleanup`
//! (or, if a test panics first, on drop).

use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::{StoreConfig, connect};

/// Default for tests when `DATABASE_URL` is not set.
pub const DEFAULT_URL: &str = crate::DEFAULT_DATABASE_URL;

/// A fresh, migrated database named `t_<random>`.
#[derive(Debug)]
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    name: String,
    admin_url: String,
    dropped: bool,
}

impl TestDb {
    pub async fn new() -> Self {
        let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to DATABASE_URL (is PostgreSQL running? scripts/test.sh starts it)");
        admin
            .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .expect("create test database");
        let url = replace_db(&admin_url, &name);
        let pool = connect(&StoreConfig::new(&url))
            .await
            .expect("migrate test database");
        Self {
            pool,
            url,
            name,
            admin_url,
            dropped: false,
        }
    }

    /// Closes the pool and drops the database.
    pub async fn cleanup(mut self) {
        self.pool.close().await;
        drop_database(&self.admin_url, &self.name).await;
        self.dropped = true;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime; a fresh thread with its own runtime
        // can block on the DROP without stalling it.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&admin_url, &name));
            }
        })
        .join();
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = PgConnection::connect(admin_url).await {
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
            )))
            .await;
    }
}

/// `postgres://u:p@h:5432/old?x` -> `postgres://u:p@h:5432/new?x`
fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_db;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(
            replace_db("postgres://u:p@h:5432/test?sslmode=disable", "t_1"),
            "postgres://u:p@h:5432/t_1?sslmode=disable"
        );
        assert_eq!(replace_db("postgres://h", "t_1"), "postgres://h/t_1");
    }
}
