//! The real `qr-worker` binary with a cleared environment: configuration is
//! checked before anything else, and a bad value exits 64 naming it.

use service::testing::process::{assert_config_refused, run};

const QR_WORKER: &str = env!("CARGO_BIN_EXE_qr-worker");

#[test]
fn a_bad_value_exits_64_with_one_line_naming_the_variable_and_the_rule() {
    for (var, value, rule) in [
        ("QR_CONCURRENCY", "0", "at least 1"),
        ("QR_ECC", "X", "L, M, Q, H"),
        ("QR_JOB_TIMEOUT", "30", "duration such as 30s"),
        ("REDIS_URL", "http://:secretpw@h", "redis://"),
        ("LOG_FORMAT", "xml", "auto, json or pretty"),
        ("STORAGE_TEMP_MAX_AGE", "10s", "longer than QR_JOB_TIMEOUT"),
    ] {
        assert_config_refused(QR_WORKER, &[(var, value)], var, rule, "secretpw");
    }
}

#[test]
fn a_database_that_cannot_be_reached_exits_1_naming_it_without_the_password() {
    let out = run(
        QR_WORKER,
        &[
            (
                "DATABASE_URL",
                "postgres://postgres:secretpw@127.0.0.1:5432/no_such_database",
            ),
            ("HEALTH_ADDR", "127.0.0.1:0"),
            ("LOG_FORMAT", "json"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "connecting to PostgreSQL at postgres://postgres:***@127.0.0.1:5432/no_such_database"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("secretpw"), "{stdout}");
}
