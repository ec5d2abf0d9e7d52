//! The real `context-worker` binary with a cleared environment: configuration
//! is checked before anything else, and a bad value exits 64 naming it.

use service::testing::process::assert_config_refused;

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
        let program = env!("CARGO_BIN_EXE_context-worker");
        assert_config_refused(program, &[(var, value)], var, rule, "secretpw");
    }
}
