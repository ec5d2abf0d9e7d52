//! Photos given by URL: fetched only from allowed hosts, never from inside
//! addresses (after DNS and on every redirect), within size and time limits.
//! The photo server runs on loopback, which is itself refused unless the
//! test-only switch `PHOTO_FETCH_ALLOW_LOOPBACK` is on: each positive case
//! also shows the same URL refused with the switch off.

use std::net::SocketAddr;
use std::time::Duration;

use photo_worker::{FetchError, FetchPolicy, Fetcher};
use store::photos::ProcessingStatus;

use crate::support::{PhotoWorld, SERVED_BIB, TestApp, photo_server};

fn fetcher(allowed: &str, allow_loopback: bool) -> Fetcher {
    Fetcher::new(FetchPolicy {
        allowed_hosts: allowed.parse().expect("valid hosts"),
        allow_loopback,
        timeout: Duration::from_secs(5),
        max_bytes: 1024 * 1024,
        ..FetchPolicy::default()
    })
}

/// The photo server as an allowed-hosts entry names it: `localhost:PORT`.
fn host(server: SocketAddr) -> String {
    format!("localhost:{}", server.port())
}

fn refused(result: Result<photo_worker::fetch::Fetched, FetchError>) -> String {
    match result {
        Err(e @ FetchError::Refused { .. }) => {
            assert!(e.is_permanent());
            e.to_string()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Fetches `url` allowing `allowed`; the refusal's message.
async fn refusal(allowed: &str, allow_loopback: bool, url: &str) -> String {
    refused(fetcher(allowed, allow_loopback).fetch(url).await)
}

#[tokio::test]
async fn an_allowed_host_that_resolves_to_loopback_is_refused_and_fetched_only_with_the_switch() {
    let server = photo_server().await;
    let url = format!("http://localhost:{}/bib.png", server.port());

    let error = refusal(&host(server), false, &url).await;
    assert!(
        error.contains("localhost resolves to") && error.contains("loopback"),
        "{error}"
    );
    let literal = format!("http://127.0.0.1:{}/bib.png", server.port());
    let error = refusal(&format!("127.0.0.1:{}", server.port()), false, &literal).await;
    assert!(error.contains("127.0.0.1, a loopback address"), "{error}");

    let fetched = fetcher(&host(server), true)
        .fetch(&url)
        .await
        .expect("fetched");
    assert_eq!(
        fetched.bytes,
        photo_worker::testing::bib_photo_png(&[SERVED_BIB])
    );
    // A relative redirect on the same allowed host is followed.
    let via = format!("http://localhost:{}/to-bib", server.port());
    let fetched = fetcher(&host(server), true)
        .fetch(&via)
        .await
        .expect("redirected");
    assert!(fetched.url.ends_with("/bib.png"), "{}", fetched.url);
}

#[tokio::test]
async fn a_redirect_to_the_metadata_address_is_refused_even_when_its_host_is_allowed() {
    let server = photo_server().await;
    let url = format!("http://localhost:{}/to-metadata", server.port());
    // Not on the list: refused by name.
    let error = refusal(&host(server), true, &url).await;
    assert!(
        error.contains("169.254.169.254") && error.contains("PHOTO_FETCH_ALLOWED_HOSTS"),
        "{error}"
    );
    // On the list, and the loopback switch on: refused by address all the same.
    let error = refusal(
        &format!("localhost:{}, 169.254.169.254", server.port()),
        true,
        &url,
    )
    .await;
    assert!(error.contains("169.254.169.254, a link-local"), "{error}");
    let direct = refusal(
        "169.254.169.254",
        true,
        "http://169.254.169.254/latest/meta-data/",
    )
    .await;
    assert!(direct.contains("link-local"), "{direct}");
}

#[tokio::test]
async fn an_allowed_host_is_fetched_only_on_the_ports_its_entry_allows() {
    let server = photo_server().await;
    let url = format!("http://localhost:{}/bib.png", server.port());
    // "localhost" alone allows 80 and 443: the server's own port is another service.
    let error = refusal("localhost", true, &url).await;
    assert!(
        error.contains(&format!("port {}", server.port())),
        "{error}"
    );
    fetcher(&host(server), true)
        .fetch(&url)
        .await
        .expect("the named port is fetched");
}

#[tokio::test]
async fn a_body_over_the_size_limit_a_silent_server_and_a_404_end_the_fetch() {
    let server = photo_server().await;
    let base = format!("http://localhost:{}", server.port());
    let f = fetcher(&host(server), true);
    let err = f
        .fetch(&format!("{base}/huge"))
        .await
        .expect_err("too large");
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                limit: 1_048_576,
                ..
            }
        ) && err.is_permanent(),
        "{err}"
    );
    let err = f.fetch(&format!("{base}/missing")).await.expect_err("404");
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }) && err.is_permanent(),
        "{err}"
    );
    let quick = Fetcher::new(FetchPolicy {
        timeout: Duration::from_millis(300),
        ..f.policy().clone()
    });
    let err = quick
        .fetch(&format!("{base}/hang"))
        .await
        .expect_err("timeout");
    assert!(
        matches!(err, FetchError::Timeout(_)) && !err.is_permanent(),
        "{err}"
    );
    assert!(err.to_string().contains("PHOTO_FETCH_TIMEOUT"), "{err}");
}

#[tokio::test]
async fn a_photo_given_by_url_is_fetched_stored_and_its_bib_found() {
    let app = TestApp::new().await;
    let server = photo_server().await;
    let worker = app
        .spawn_worker_with(|c| {
            c.fetch.allowed_hosts = host(server).parse().expect("hosts");
            c.fetch.allow_loopback = true;
        })
        .await;
    let photo = app
        .by_url(&format!("http://localhost:{}/bib.png", server.port()))
        .await;
    app.enqueue(photo.id).await;
    let done = app.photo_until(photo.id, ProcessingStatus::Completed).await;
    assert_eq!(app.bibs(photo.id).await, vec![SERVED_BIB]);
    let original = done.storage_path.expect("the fetched original is kept");
    assert_eq!(original, format!("photos/url-{}.png", photo.id));
    assert_eq!(done.content_type.as_deref(), Some("image/png"));
    assert!(app.storage_path(&original).is_file());
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_refused_url_fails_the_photo_at_once_with_the_reason() {
    let app = TestApp::new().await;
    let server = photo_server().await;
    let worker = app
        .spawn_worker_with(|c| c.fetch.allowed_hosts = host(server).parse().expect("hosts"))
        .await;
    let to_loopback = app
        .by_url(&format!("http://localhost:{}/bib.png", server.port()))
        .await;
    let to_metadata = app
        .by_url(&format!("http://localhost:{}/to-metadata", server.port()))
        .await;
    app.enqueue(to_loopback.id).await;
    app.enqueue(to_metadata.id).await;
    for (id, reason) in [(to_loopback.id, "loopback"), (to_metadata.id, "loopback")] {
        let failed = app.photo_until(id, ProcessingStatus::Failed).await;
        let error = failed.processing_error.expect("a reason");
        assert!(
            error.starts_with("refused to fetch http://localhost:"),
            "{error}"
        );
        assert!(error.contains(reason), "{error}");
        assert_eq!(failed.attempts, 1, "a refusal is not retried");
        assert_eq!(failed.storage_path, None);
    }
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn an_https_url_speaks_tls_to_the_vetted_address() {
    // The photo server speaks plain HTTP: the TLS handshake is what fails, a
    // retryable network error naming TLS.
    let server = photo_server().await;
    let url = format!("https://localhost:{}/bib.png", server.port());
    let err = fetcher(&host(server), true)
        .fetch(&url)
        .await
        .expect_err("no TLS there");
    assert!(
        matches!(err, FetchError::Network { .. }) && !err.is_permanent(),
        "{err}"
    );
    assert!(err.to_string().contains("TLS"), "{err}");
    let refused = refusal(&host(server), false, &url).await;
    assert!(refused.contains("loopback"), "{refused}");
}
