//! The real `sync-worker` binary with a cleared environment: a bad or missing
//! value exits 64 naming it, and the token never prints.

use std::process::Command;

#[test]
fn a_bad_value_exits_64_with_one_line_naming_the_variable() {
    for (vars, var, rule) in [
        (vec![], "WISPRO_TOKEN", "must be set"),
        (
            vec![("WISPRO_TOKEN", "tok-secret"), ("SYNC_BCRYPT_COST", "2")],
            "SYNC_BCRYPT_COST",
            "between 4 and 31",
        ),
        (
            vec![("WISPRO_TOKEN", "tok-secret"), ("WISPRO_URL", "ftp://x")],
            "WISPRO_URL",
            "http://",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
            .env_clear()
            .envs(vars)
            .env("HEALTH_ADDR", "127.0.0.1:0")
            .output()
            .expect("run sync-worker");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("sync-worker: invalid configuration: {var}: "))
                && stderr.contains(rule),
            "{stderr}"
        );
        assert!(!stderr.contains("tok-secret"), "{stderr}");
    }
}
