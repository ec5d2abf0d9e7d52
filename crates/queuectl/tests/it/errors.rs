//! Failures: one line on stderr and the documented exit code.

use crate::support::{TestEnv, run_queuectl};

#[test]
fn unreachable_redis_exits_69_and_never_prints_the_password() {
    for (url, shown) in [
        ("redis://127.0.0.1:1", "redis://127.0.0.1:1"),
        (
            "redis://ops:s3cr3t-pw@127.0.0.1:1/0",
            "redis://ops:***@127.0.0.1:1/0",
        ),
    ] {
        let run = run_queuectl(&["--redis-url", url], &["stats"]);
        assert_eq!(run.code, 69, "{run:#?}");
        let expected = format!("queuectl: cannot reach redis at {shown}: ");
        assert!(run.stderr.starts_with(&expected), "{run:#?}");
        assert!(run.stderr.contains("refused"), "{run:#?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
        assert!(!run.stderr.contains("s3cr3t-pw"), "{run:#?}");
    }
}

#[test]
fn unknown_queues_exit_66() {
    let t = TestEnv::new();
    for args in [
        vec!["stats", "foo"],
        vec!["pause", "foo"],
        vec!["failed", "foo"],
        vec!["purge", "foo", "--yes"],
        vec!["consumers", "foo"],
    ] {
        let run = t.queuectl(&args);
        assert_eq!(run.code, 66, "{args:?}: {run:#?}");
        assert_eq!(
            run.stderr,
            "queuectl: queue \"foo\" does not exist (no producer or worker has used it)\n"
        );
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    let t = TestEnv::new();
    for args in [
        vec!["consumers", "work", "--remove-idle", "5parsecs"],
        vec!["monitor", "--interval", "0s"],
        vec!["purge"],
        vec!["pause", "bad{name}"],
        vec!["failed", "work", "--limit", "0"],
        vec!["frobnicate"],
    ] {
        let run = t.queuectl(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(
            run.stderr.contains("Usage:") || run.stderr.contains("--help"),
            "{run:#?}"
        );
    }
}
