//! A worker process that reaches Redis over TLS with a password
//! (`rediss://:PASSWORD@host`): it trusts the operating system's CAs plus the
//! one `SSL_CERT_FILE` names, checks the server's name, and runs jobs enqueued
//! over the server's plain port.

use std::process::Stdio;
use std::time::Duration;

use queue_core::testing::{PATIENCE, PrivateRedis, eventually};
use queue_core::{Admin, Broker, BrokerConfig, NewJob, Producer};

use crate::support::{WorkerProcess, worker_command};

/// What a worker that cannot connect says before it exits.
fn refused(url: &str, env: &[(&str, &str)], prefix: &str) -> String {
    let mut child = worker_command(url, prefix, "tls")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting queue-bench worker");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success(), "the worker exits with an error");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a worker that cannot connect exits"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped stderr"), &mut stderr)
        .expect("read stderr");
    stderr
}

#[tokio::test]
async fn a_worker_runs_jobs_over_tls_with_a_password_and_trusts_only_the_named_ca() {
    let redis = PrivateRedis::start_tls().await;
    let prefix = "tls-test";
    let broker = Broker::connect(BrokerConfig::new(redis.url()).prefix(prefix))
        .await
        .expect("the plain port answers with the password");
    let queue = broker.queue("tls").expect("queue");
    let producer = Producer::new(broker.clone());
    for i in 0..20 {
        producer
            .enqueue(
                &queue,
                NewJob::new("tls.test", format!("job {i}").into_bytes()),
            )
            .await
            .expect("enqueue");
    }
    let ca = redis.ca_file().display().to_string();
    let tls_url = redis.tls_url();

    // A CA the system does not know: refused, and the password is never printed.
    let untrusted = refused(&tls_url, &[], prefix);
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );
    let password = tls_url
        .split(['@', ':'])
        .nth(2)
        .expect("the password in the URL");
    assert!(!untrusted.contains(password), "{untrusted}");
    // The right CA but the wrong password: refused.
    let wrong = tls_url.replace(password, "not-the-password");
    let unauthorized = refused(&wrong, &[("SSL_CERT_FILE", &ca)], prefix);
    assert!(
        unauthorized.contains("WRONGPASS") || unauthorized.to_lowercase().contains("auth"),
        "{unauthorized}"
    );

    // Trusting the CA: the worker connects over TLS and runs every job.
    let _worker =
        WorkerProcess::spawn_on(&tls_url, &[("SSL_CERT_FILE", &ca)], prefix, "tls", &[]).await;
    let admin = Admin::new(broker.clone());
    eventually("the TLS worker completes the 20 jobs", async || {
        let stats = admin.stats(&queue).await.ok()?;
        (stats.completed == 20).then_some(())
    })
    .await;
}
