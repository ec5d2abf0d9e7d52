//! The real `photo-worker` binary with a cleared environment: configuration is
//! checked before anything else, and a bad value exits 64 naming it.

use std::process::{Command, Output};

fn photo_worker(vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_photo-worker"))
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run photo-worker")
}

#[test]
fn a_bad_value_exits_64_with_one_line_naming_the_variable_and_the_rule() {
    for (var, value, rule) in [
        ("PHOTOS_CONCURRENCY", "0", "at least 1"),
        ("PHOTO_MAX_PIXELS", "lots", "whole number"),
        (
            "PHOTO_FETCH_ALLOWED_HOSTS",
            "https://photos.example.com",
            "host name",
        ),
        ("PHOTO_FETCH_ALLOW_LOOPBACK", "perhaps", "true or false"),
        ("PHOTO_FETCH_TIMEOUT", "5m", "less than PHOTOS_JOB_TIMEOUT"),
        ("REDIS_URL", "http://:secretpw@h", "redis://"),
    ] {
        let out = photo_worker(&[(var, value), ("HEALTH_ADDR", "127.0.0.1:0")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("photo-worker: invalid configuration: {var}: "))
                && stderr.contains(rule),
            "{stderr}"
        );
        assert!(!stderr.contains("secretpw"), "{stderr}");
    }
}
