//! Test support for code built on queue-core (feature `testing`).
//!
//! Every test talks to the real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`)
//! under a key prefix of its own (`t-xxxxxxxx`), so tests run in parallel without
//! seeing each other. The prefix's keys are deleted when the [`TestRedis`] is
//! dropped, whether the test passed or panicked. Nothing waits "a bit":
//! conditions are polled against a deadline with [`eventually`]. Tests that
//! need a server of their own (restarts, AOF) start a [`PrivateRedis`]; those
//! that need a Redis Cluster start a [`PrivateCluster`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::FromRedisValue;
use tokio::task::JoinHandle;

use crate::admin::{ConsumerInfo, DeadLetter};
use crate::{
    Admin, Backoff, Broker, BrokerConfig, CancellationToken, Enqueued, Handler, Job, JobError,
    NewJob, Producer, Queue, QueueStats, Worker, WorkerConfig,
};

/// Redis used when `REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The Redis the tests use: `REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// Longest a condition may take to come true. Generous because debug builds run
/// many tests at once on a small machine; a passing test returns as soon as the
/// condition holds, so this never adds to the run time.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Pause between two probes of a condition.
const POLL: Duration = Duration::from_millis(10);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Default worker settings with every interval in milliseconds and concurrency 4:
/// see [`fast`].
pub fn fast_worker_config() -> WorkerConfig {
    fast(WorkerConfig {
        concurrency: 4.try_into().expect("nonzero"),
        ..WorkerConfig::default()
    })
}

/// [`fast_worker_config`] allowing each job `max_attempts` attempts.
pub fn fast_worker_config_attempts(max_attempts: u32) -> WorkerConfig {
    WorkerConfig {
        max_attempts,
        ..fast_worker_config()
    }
}

/// `config` with its intervals in milliseconds, so crash recovery, retries and
/// shutdown happen within a test's lifetime; concurrency, attempts and the job
/// timeout are kept. Visibility 400 ms with a 100 ms heartbeat keeps the validated
/// ratio (heartbeat < visibility / 2) with room for a loaded machine.
pub fn fast(config: WorkerConfig) -> WorkerConfig {
    WorkerConfig {
        block: ms(500),
        visibility_timeout: ms(400),
        heartbeat_interval: ms(100),
        reclaim_interval: ms(50),
        promote_interval: ms(20),
        pause_poll: ms(20),
        grace_period: Duration::from_secs(5),
        backoff: Backoff {
            initial: ms(20),
            ..config.backoff
        },
        reconnect_backoff: Backoff {
            initial: ms(10),
            max: ms(500),
            ..config.reconnect_backoff
        },
        ..config
    }
}

/// One test's view of Redis: a fresh key prefix, and a broker, producer and admin on it.
pub struct TestRedis {
    pub prefix: String,
    pub broker: Broker,
    pub admin: Admin,
    pub producer: Producer,
    queues: Mutex<Vec<Queue>>,
    _keys: PrefixGuard,
}

impl TestRedis {
    pub async fn new() -> Self {
        Self::on(BrokerConfig::new(redis_url())).await
    }

    /// The same on another deployment, e.g. a [`PrivateCluster`] (its prefix
    /// is replaced by a fresh one).
    pub async fn on(config: BrokerConfig) -> Self {
        let prefix = format!("t-{:08x}", rand::random::<u32>());
        // Created before anything can write under the prefix. A cluster's keys
        // are spread over its masters; the private clusters tests start go
        // away with their processes.
        let guard = PrefixGuard {
            prefix: prefix.clone(),
            url: (!config.is_cluster()).then(|| config.url.clone()),
        };
        let url = crate::broker::redact_url(&config.url);
        let broker = Broker::connect(config.prefix(&prefix))
            .await
            .unwrap_or_else(|e| panic!("the tests need Redis at {url}: {e}"));
        Self {
            admin: Admin::new(broker.clone()),
            producer: Producer::new(broker.clone()),
            broker,
            prefix,
            queues: Mutex::new(Vec::new()),
            _keys: guard,
        }
    }

    /// A single-lane queue, destroyed by [`TestRedis::finish`].
    pub fn queue(&self, name: &str) -> Queue {
        let q = self.broker.queue(name).expect("valid queue name");
        self.queues.lock().expect("lock").push(q.clone());
        q
    }

    /// A queue with priority lanes, destroyed by [`TestRedis::finish`].
    pub fn priority_queue(&self, name: &str) -> Queue {
        let q = self.broker.priority_queue(name).expect("valid queue name");
        self.queues.lock().expect("lock").push(q.clone());
        q
    }

    /// Destroys every queue of the test and the registry, then checks that the
    /// prefix holds no key any more (so `Admin::destroy` really cleans up).
    pub async fn finish(self) {
        let queues = std::mem::take(&mut *self.queues.lock().expect("lock"));
        for q in &queues {
            self.admin.destroy(q).await.expect("destroy queue");
        }
        let _: () = self
            .cmd(redis::cmd("DEL").arg(crate::keys::registry(&self.prefix)))
            .await;
        let left: Vec<String> = self
            .cmd(redis::cmd("KEYS").arg(format!("{}:*", self.prefix)))
            .await;
        assert!(left.is_empty(), "keys left after destroy: {left:?}");
    }

    /// Runs a raw command on a pooled connection.
    pub async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut conn = self.broker.connection().await.expect("redis connection");
        cmd.query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{cmd:?} failed: {e}"))
    }

    pub async fn stats(&self, q: &Queue) -> QueueStats {
        self.admin.stats(q).await.expect("stats")
    }

    /// Polls the queue's stats until `done` holds; returns them.
    pub async fn stats_until(
        &self,
        q: &Queue,
        what: &str,
        done: impl Fn(&QueueStats) -> bool,
    ) -> QueueStats {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.stats(q).await;
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {PATIENCE:?} waiting until {what}; last stats: {s:#?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Enqueues `job` with the test's producer; an error fails the test.
    pub async fn enqueue(&self, q: &Queue, job: NewJob) -> Enqueued {
        self.producer.enqueue(q, job).await.expect("enqueue")
    }

    /// Enqueues `job`, which must be added (not a duplicate); its stream entry id,
    /// for a test that then plays a consumer by hand.
    pub async fn enqueue_entry(&self, q: &Queue, job: NewJob) -> String {
        match self.enqueue(q, job).await {
            Enqueued::Added { entry_id, .. } => entry_id,
            other => panic!("expected the job added now, got {other:?}"),
        }
    }

    /// Adds an entry holding `envelope` (any bytes) to `q`'s only stream by
    /// hand, as a producer in any language may; its entry id.
    pub async fn add_raw(&self, q: &Queue, envelope: impl AsRef<[u8]>) -> String {
        self.cmd(
            redis::cmd("XADD")
                .arg(q.keys().stream(None))
                .arg("*")
                .arg(crate::fields::ENVELOPE)
                .arg(envelope.as_ref()),
        )
        .await
    }

    /// The consumers of `q`'s group, over all lanes.
    pub async fn consumers(&self, q: &Queue) -> Vec<ConsumerInfo> {
        self.admin.consumers(q).await.expect("consumers")
    }

    /// The names of [`TestRedis::consumers`].
    pub async fn consumer_names(&self, q: &Queue) -> Vec<String> {
        self.consumers(q)
            .await
            .into_iter()
            .map(|c| c.name)
            .collect()
    }

    /// The newest dead letters of `q` (up to 1000, more than any test makes).
    pub async fn dead_letters(&self, q: &Queue) -> Vec<DeadLetter> {
        let page = self.admin.dead_letters(q, None, 1000).await;
        page.expect("dead letters").items
    }

    /// Waits until job `job_id` of `q` has a completion record: a test waiting
    /// for its own job, where the queue's `completed` counter also counts the
    /// runs of reconcilers and other repeating jobs.
    pub async fn completed_until(&self, q: &Queue, job_id: &str) {
        eventually(&format!("job {job_id} is completed"), async || {
            let done = self.admin.completions(q, 1000).await.expect("completions");
            done.iter().any(|c| c.job_id == job_id).then_some(())
        })
        .await
    }

    /// Entries delivered and not acknowledged, over all lanes.
    pub async fn pending(&self, q: &Queue) -> u64 {
        let mut total = 0;
        for stream in q.streams() {
            let reply: Vec<redis::Value> = self
                .cmd(
                    redis::cmd("XPENDING")
                        .arg(stream)
                        .arg(&WorkerConfig::default().group),
                )
                .await;
            let count = reply.into_iter().next().expect("XPENDING summary");
            total += redis::from_redis_value::<u64>(count).expect("pending count");
        }
        total
    }

    /// Pending entries of the queue's only stream: (entry id, consumer, deliveries).
    pub async fn pending_entries(&self, q: &Queue) -> Vec<(String, String, u64)> {
        let rows: Vec<(String, String, u64, u64)> = self
            .cmd(
                redis::cmd("XPENDING")
                    .arg(q.keys().stream(None))
                    .arg(&WorkerConfig::default().group)
                    .arg("-")
                    .arg("+")
                    .arg(100),
            )
            .await;
        rows.into_iter()
            .map(|(id, consumer, _idle, deliveries)| (id, consumer, deliveries))
            .collect()
    }

    /// Delivers up to `count` waiting entries of `q`'s only stream to `consumer`
    /// without running them: a worker that read them and died (creates the
    /// group if no worker has yet).
    pub async fn read_as(&self, q: &Queue, consumer: &str, count: usize) {
        let (stream, group) = (q.keys().stream(None), WorkerConfig::default().group);
        let created: redis::RedisResult<()> = {
            let mut conn = self.broker.connection().await.expect("redis connection");
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg(&group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await
        };
        if let Err(e) = created {
            assert_eq!(e.code(), Some("BUSYGROUP"), "XGROUP CREATE failed: {e}");
        }
        let _: redis::Value = self
            .cmd(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&group)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(count)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(">"),
            )
            .await;
    }

    /// Claims a pending entry of `q`'s only stream for `consumer`, which counts
    /// one more delivery (another worker that took it over and died too).
    pub async fn claim_as(&self, q: &Queue, consumer: &str, entry_id: &str) {
        let _: redis::Value = self
            .cmd(
                redis::cmd("XCLAIM")
                    .arg(q.keys().stream(None))
                    .arg(WorkerConfig::default().group)
                    .arg(consumer)
                    .arg(0)
                    .arg(entry_id),
            )
            .await;
    }

    /// Waits until `consumer` has sent nothing on any lane of `q` for 100 ms: a
    /// worker whose block time is longer is then waiting in its blocking read.
    pub async fn until_blocked(&self, q: &Queue, consumer: &str) {
        let lanes = q.streams().len();
        eventually("the worker waits in its blocking read", async || {
            let consumers = self.consumers(q).await;
            let quiet = consumers
                .iter()
                .filter(|c| c.name == consumer && c.idle_ms >= 100)
                .count();
            (quiet == lanes).then_some(())
        })
        .await;
    }

    pub async fn xlen(&self, key: &str) -> u64 {
        self.cmd(redis::cmd("XLEN").arg(key)).await
    }

    pub async fn zcard(&self, key: &str) -> u64 {
        self.cmd(redis::cmd("ZCARD").arg(key)).await
    }

    /// Asserts that nothing is left anywhere but in the dead-letter and done
    /// streams: no waiting, pending or delayed entry.
    pub async fn assert_drained(&self, q: &Queue) {
        let s = self.stats(q).await;
        assert_eq!(
            (s.waiting, s.active, s.delayed),
            (0, 0, 0),
            "queue not drained: {s:#?}"
        );
        for stream in q.streams() {
            assert_eq!(self.xlen(stream).await, 0, "{stream} is not empty");
        }
        assert_eq!(self.pending(q).await, 0, "entries left pending");
        assert_eq!(
            self.zcard(&q.keys().delayed()).await,
            0,
            "delayed not empty"
        );
    }

    /// Starts a worker in this process.
    pub fn spawn_worker<H: Handler>(
        &self,
        q: &Queue,
        config: WorkerConfig,
        handler: H,
    ) -> RunningWorker {
        let worker =
            crate::worker::worker(&self.broker, q, config, handler).expect("valid worker config");
        self.spawn(worker)
    }

    /// Runs an already built worker (e.g. one with repeating jobs) in this process.
    pub fn spawn<H: Handler>(&self, worker: Worker<H>) -> RunningWorker {
        let consumer = worker.consumer_name().to_owned();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(worker.run(stop.clone()));
        RunningWorker {
            consumer,
            stop,
            handle: Some(handle),
        }
    }
}

/// Deletes every key of a prefix when dropped, with a blocking connection so it
/// also runs when a test panics.
struct PrefixGuard {
    prefix: String,
    /// The server to clean; None for a cluster.
    url: Option<String>,
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let Some(url) = &self.url else {
            return;
        };
        let Ok(client) = redis::Client::open(url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<u64> = redis::cmd("UNLINK").arg(&keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// A worker running in a task of the test's runtime; cancelled when dropped.
pub struct RunningWorker {
    pub consumer: String,
    stop: CancellationToken,
    handle: Option<JoinHandle<crate::Result<()>>>,
}

impl RunningWorker {
    /// Asks the worker to shut down without waiting for it.
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Shuts the worker down and waits until `run` returned.
    pub async fn stop(mut self) {
        self.stop.cancel();
        self.join().await;
    }

    /// Waits until `run` returned (after [`RunningWorker::cancel`]).
    pub async fn join(&mut self) {
        let handle = self.handle.take().expect("joined once");
        tokio::time::timeout(PATIENCE, handle)
            .await
            .expect("the worker stops within the deadline")
            .expect("the worker task does not panic")
            .expect("the worker returns Ok");
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `probe` until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T>(what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_within(what, PATIENCE, probe).await
}

pub async fn eventually_within<T>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Checks `probe` again and again for `window`; fails the test the first time it
/// is false. For guarantees that say something must *not* happen.
pub async fn holds_for(what: &str, window: Duration, mut probe: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert!(probe().await, "expected {what} to hold for {window:?}");
        tokio::time::sleep(POLL).await;
    }
    assert!(probe().await, "expected {what} to hold for {window:?}");
}

/// What a handler saw on one run.
#[derive(Debug, Clone)]
pub struct Run {
    pub job_id: String,
    pub kind: String,
    pub attempt: u32,
    pub deliveries: u64,
    pub last_error: String,
    pub dead_letter_retry: bool,
    pub payload: Bytes,
    pub started: Instant,
    pub started_unix_ms: i64,
}

/// Every run of a test's handlers, in start order.
#[derive(Debug, Clone, Default)]
pub struct Runs(Arc<Mutex<Vec<Run>>>);

impl Runs {
    pub fn record(&self, job: &Job) -> Run {
        let run = Run {
            job_id: job.id().to_owned(),
            kind: job.kind().to_owned(),
            attempt: job.attempt(),
            deliveries: job.deliveries(),
            last_error: job.last_error().to_owned(),
            dead_letter_retry: job.is_dead_letter_retry(),
            payload: job.payload().clone(),
            started: Instant::now(),
            started_unix_ms: unix_ms(SystemTime::now()),
        };
        self.0.lock().expect("lock").push(run.clone());
        run
    }

    /// A handler that records each run and succeeds.
    pub fn recorder(
        &self,
    ) -> impl Fn(Job) -> std::future::Ready<Result<(), JobError>> + Clone + use<> {
        self.answering(|_run: &Run| Ok(()))
    }

    /// A handler that records each run, then answers what `outcome` makes of
    /// it: a test states only how its jobs fail.
    pub fn answering<F>(
        &self,
        outcome: F,
    ) -> impl Fn(Job) -> std::future::Ready<Result<(), JobError>> + Clone + use<F>
    where
        F: Fn(&Run) -> Result<(), JobError> + Clone,
    {
        let runs = self.clone();
        move |job: Job| {
            let run = runs.record(&job);
            std::future::ready(outcome(&run))
        }
    }

    pub fn all(&self) -> Vec<Run> {
        self.0.lock().expect("lock").clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn of(&self, job_id: &str) -> Vec<Run> {
        self.all()
            .into_iter()
            .filter(|r| r.job_id == job_id)
            .collect()
    }
}

/// A redis-server of a test's own, on a free loopback port, for tests that kill,
/// restart or break their Redis. Killed when dropped, also when the test fails.
pub struct PrivateRedis {
    port: u16,
    aof: bool,
    tls: Option<Tls>,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

/// The TLS side of a [`PrivateRedis::start_tls`] server.
struct Tls {
    port: u16,
    password: String,
}

impl PrivateRedis {
    /// A server that keeps nothing on disk.
    pub async fn start() -> Self {
        Self::launch(false).await
    }

    /// A server that writes every command to its AOF before answering
    /// (`appendfsync always`), so a restart after SIGKILL reloads it.
    pub async fn start_with_aof() -> Self {
        Self::launch(true).await
    }

    /// A server that also listens with TLS (certificate for `localhost` and
    /// 127.0.0.1, signed by a CA of its own: [`PrivateRedis::ca_file`]) and
    /// requires a password on both ports. The certificates come from `openssl`.
    pub async fn start_tls() -> Self {
        let dir = tempfile::tempdir().expect("a directory for the server");
        make_certificates(dir.path());
        let mut redis = Self {
            port: free_port(),
            aof: false,
            tls: Some(Tls {
                port: free_port(),
                password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
            }),
            dir,
            child: None,
        };
        redis.restart().await;
        redis
    }

    async fn launch(aof: bool) -> Self {
        let mut redis = Self {
            port: free_port(),
            aof,
            tls: None,
            dir: tempfile::tempdir().expect("a directory for the server"),
            child: None,
        };
        redis.restart().await;
        redis
    }

    /// The plain port's URL (with the password of a TLS server).
    pub fn url(&self) -> String {
        match &self.tls {
            Some(tls) => format!("redis://:{}@127.0.0.1:{}", tls.password, self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The TLS port's `rediss://` URL with the password, by host name (the
    /// certificate's name is checked). Only for [`PrivateRedis::start_tls`].
    pub fn tls_url(&self) -> String {
        let tls = self.tls.as_ref().expect("a server started with start_tls");
        format!("rediss://:{}@localhost:{}", tls.password, tls.port)
    }

    /// The PEM file of the CA that signed a TLS server's certificate: what a
    /// client must trust (`SSL_CERT_FILE`).
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Whether the server runs (it was not killed, or was restarted since).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .await
                .expect("SIGKILL the private redis-server");
        }
    }

    /// Starts the server (again) on the same port and directory, and waits until
    /// it answers (not `LOADING` its AOF).
    pub async fn restart(&mut self) {
        let persistence: &[&str] = if self.aof {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let mut tls_args: Vec<String> = Vec::new();
        if let Some(tls) = &self.tls {
            let file = |name: &str| self.dir.path().join(name).display().to_string();
            tls_args.extend(
                [
                    "--tls-port",
                    &tls.port.to_string(),
                    "--tls-cert-file",
                    &file("server.crt"),
                    "--tls-key-file",
                    &file("server.key"),
                    "--tls-ca-cert-file",
                    &file("ca.crt"),
                    "--tls-auth-clients",
                    "no",
                    "--requirepass",
                    &tls.password,
                ]
                .map(str::to_owned),
            );
        }
        let args = persistence
            .iter()
            .copied()
            .chain(tls_args.iter().map(String::as_str));
        self.child = Some(redis_server(self.port, self.dir.path(), args));
        answers(&self.url()).await;
    }
}

/// A redis-server on loopback `port` that saves no snapshot, keeps its files in
/// `dir`, and is killed when the returned child drops; `args` say the rest.
fn redis_server<'a>(
    port: u16,
    dir: &std::path::Path,
    args: impl IntoIterator<Item = &'a str>,
) -> tokio::process::Child {
    tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server starts (scripts/test.sh installs it)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A CA and a server certificate it signed for `localhost` and 127.0.0.1, in
/// `dir` (`ca.crt`, `server.crt`, `server.key`).
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=rsq test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write the extension file");
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

/// A Redis Cluster of its own for one test: three masters (no replicas) on free
/// loopback ports, each in its own directory, slots spread by
/// `redis-cli --cluster create`. Killed with the test.
pub struct PrivateCluster {
    nodes: Vec<ClusterNode>,
}

struct ClusterNode {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl PrivateCluster {
    /// Starts three masters and waits until every node reports `cluster_state:ok`.
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let mut node = ClusterNode {
                port: free_cluster_port(),
                dir: tempfile::tempdir().expect("a directory for the node"),
                child: None,
            };
            node.start();
            nodes.push(node);
        }
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            answers(&node.url()).await;
        }
        let status = tokio::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .expect("redis-cli runs (scripts/test.sh installs redis-tools)");
        assert!(status.success(), "redis-cli --cluster create failed");
        for node in &cluster.nodes {
            let url = node.url();
            eventually("the cluster is formed on every node", async || {
                let client = redis::Client::open(url.as_str()).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                let known: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                (info.contains("cluster_state:ok") && known.lines().count() == 3).then_some(())
            })
            .await;
        }
        cluster
    }

    /// The seed list a binary is given: every node's URL, comma-separated.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(ClusterNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A broker config for this cluster.
    pub fn broker_config(&self) -> BrokerConfig {
        BrokerConfig::new(self.url())
    }

    /// The port of the master that holds `key`'s slot.
    pub async fn master_of(&self, key: &str) -> u16 {
        let client = redis::Client::open(self.nodes[0].url()).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("a cluster node");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT");
        let slots: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER SLOTS");
        // [[start, end, [host, port, id, ...], replicas...], ...]
        let ranges: Vec<Vec<redis::Value>> =
            redis::from_redis_value(slots).expect("CLUSTER SLOTS ranges");
        ranges
            .into_iter()
            .find_map(|range| {
                let mut it = range.into_iter();
                let start: u16 = redis::from_redis_value(it.next()?).ok()?;
                let end: u16 = redis::from_redis_value(it.next()?).ok()?;
                let master: Vec<redis::Value> = redis::from_redis_value(it.next()?).ok()?;
                let port: u16 = redis::from_redis_value(master.into_iter().nth(1)?).ok()?;
                (start..=end).contains(&slot).then_some(port)
            })
            .expect("every slot is served")
    }
}

impl ClusterNode {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"];
        let args = args.into_iter().chain(["--appendonly", "no"]);
        self.child = Some(redis_server(self.port, self.dir.path(), args));
    }
}

/// A free port whose cluster bus port (port + 10000) fits too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

async fn answers(url: &str) {
    eventually("the redis-server answers", async || {
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    })
    .await;
}
