//! The real `sync-worker` binary with a cleared environment: a bad or missing
//! value exits 64 naming it, and the token never prints.

use service::testing::process::assert_config_refused;

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
        let program = env!("CARGO_BIN_EXE_sync-worker");
        assert_config_refused(program, &vars, var, rule, "tok-secret");
    }
}
