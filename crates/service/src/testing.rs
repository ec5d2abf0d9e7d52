//! Test support (feature `testing`): one test's world for a worker's tests
//! ([`TestWorld`]), a service running in the test's runtime on port 0, the
//! settings that point it at a test's own Redis prefix and database, worker
//! settings in milliseconds, and a plain HTTP GET for the health port; a binary
//! run as a process of its own ([`process::Process`]) and a binary's refusal of
//! a bad configuration ([`process::assert_config_refused`]).

pub mod bench;
pub mod process;
mod world;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use jobs::QueueSpec;
use queue_core::testing::PATIENCE;
use queue_core::{CancellationToken, WorkerConfig};

use crate::{BaseConfig, SecretUrl, Started};

pub use self::world::{TableLock, TestWorld, assert_one_past_error};

/// Settings pointing at the test's Redis key prefix and database (`REDIS_URL`
/// or `redis://127.0.0.1:6379`), health port picked by the system.
pub fn base_config(redis_prefix: &str, database_url: &str) -> BaseConfig {
    BaseConfig {
        redis_url: SecretUrl::new(queue_core::testing::redis_url()),
        redis_cluster: false,
        redis_prefix: redis_prefix.to_owned(),
        database_url: SecretUrl::new(database_url),
        health_addr: "127.0.0.1:0".parse().expect("a valid address"),
    }
}

/// `spec`'s catalogue settings (concurrency, attempts, job timeout) with every
/// interval in milliseconds ([`queue_core::testing::fast`]), so retries, reclaims
/// and shutdown happen within a test.
pub fn fast_worker_config(spec: &QueueSpec) -> WorkerConfig {
    queue_core::testing::fast(spec.worker_config())
}

/// A [`Started`] service running in a task of the test's runtime; cancelled
/// when dropped (also when the test panics).
#[derive(Debug)]
pub struct Running {
    /// The bound address (a worker's health port).
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Runs `started` in a task until [`Running::stop`] or drop.
    pub fn spawn(started: Started) -> Self {
        let shutdown = CancellationToken::new();
        Self {
            addr: started.addr(),
            handle: Some(tokio::spawn(started.run(shutdown.clone()))),
            shutdown,
        }
    }

    /// Whether it is still running (nothing but shutdown should stop it).
    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Sends the shutdown signal without waiting.
    pub fn cancel(&self) {
        self.shutdown.cancel();
    }

    /// Waits until it stops on its own or after [`Running::cancel`]; panics if
    /// that takes longer than [`PATIENCE`] or the task panicked.
    pub async fn join(mut self) -> anyhow::Result<()> {
        let handle = self.handle.take().expect("joined once");
        tokio::time::timeout(PATIENCE, handle)
            .await
            .expect("the service stops within the deadline")
            .expect("the service task does not panic")
    }

    /// Shuts it down and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.cancel();
        if let Err(e) = self.join().await {
            panic!("the service stopped with an error: {e:#}");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `GET path` on `addr` over plain HTTP/1.1: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("sending the request");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("the server answers in time")
        .expect("reading the response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
