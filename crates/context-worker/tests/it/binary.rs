//! The real `context-worker` binary with a cleared environment: configuration
//! is checked before anything else, and a bad value exits 64 naming it.

use std::process::Command;

#[test]
fn a_bad_value_exits_64_with_one_line_naming_the_variable_and_the_rule() {
    for (var, value, rule) in [
        ("LLM_API", "grpc", "openai or chat"),
        ("LLM_URL", "ftp://llm", "http://"),
        ("LLM_TIMEOUT", "2m", "less than CONTEXT_JOB_TIMEOUT"),
        ("CONTEXT_GLOBAL_CONCURRENCY", "0", "at least 1"),
        ("CONTEXT_RATE_LIMIT", "often", "10/1s"),
        ("REDIS_URL", "http://:secretpw@h", "redis://"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_context-worker"))
            .env_clear()
            .env(var, value)
            .env("HEALTH_ADDR", "127.0.0.1:0")
            .output()
            .expect("run context-worker");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("context-worker: invalid configuration: {var}: "))
                && stderr.contains(rule),
            "{stderr}"
        );
        assert!(!stderr.contains("secretpw"), "{stderr}");
    }
}
