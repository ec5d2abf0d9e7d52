//! The real `photo-worker` binary with a cleared environment: configuration is
//! checked before anything else, and a bad value exits 64 naming it.

use service::testing::process::assert_config_refused;

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
        let program = env!("CARGO_BIN_EXE_photo-worker");
        assert_config_refused(program, &[(var, value)], var, rule, "secretpw");
    }
}
