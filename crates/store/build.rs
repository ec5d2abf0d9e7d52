//! Tells cargo what the store's compiled SQL comes from, which it cannot see
//! by itself: `sqlx::migrate!` embeds the files of `migrations/` (a new file
//! too), and the checked queries expand from the offline data in the
//! workspace's `.sqlx/` (or a database when `SQLX_OFFLINE` is false; see
//! scripts/sqlx-prepare.sh, which relies on `SQLX_OFFLINE_DIR` here to make the
//! queries expand again).
fn main() {
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rerun-if-changed=../../.sqlx");
    println!("cargo::rerun-if-env-changed=SQLX_OFFLINE");
    println!("cargo::rerun-if-env-changed=SQLX_OFFLINE_DIR");
}
