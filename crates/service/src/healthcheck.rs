//! `BINARY healthcheck [IP:PORT[/PATH]]`: the probe a container's `HEALTHCHECK`
//! runs. The runtime images carry no curl, so each binary GETs its own health
//! endpoint with a plain HTTP/1.0 request and exits 0 on a 200, 1 otherwise.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{ConfigError, Vars};

/// The first argument that makes [`crate::main`] probe instead of serving.
pub const COMMAND: &str = "healthcheck";

/// The path probed unless the target names one: ready means its dependencies answer.
pub const DEFAULT_PATH: &str = "/readyz";

/// Connecting, sending and reading each give up after this; `/readyz` itself
/// answers within 2 s (its checks' deadline).
pub const TIMEOUT: Duration = Duration::from_secs(4);

/// The most of a response kept for the report (container runtimes keep the
/// probe's output in the container's health log).
const MAX_RESPONSE: u64 = 16 * 1024;

/// Probes `target` (`IP:PORT` with an optional `/PATH`), or `HEALTH_ADDR` and
/// [`DEFAULT_PATH`] without one, and says so on stdout (healthy) or stderr.
/// Exits 0 on a 200, 1 on anything else, 64 when there is nothing to probe.
pub fn run(name: &str, vars: &dyn Vars, target: Option<&str>) -> ExitCode {
    let (addr, path) = match parse_target(vars, target) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("{name} {COMMAND}: {e}");
            return ExitCode::from(crate::EXIT_BAD_CONFIG);
        }
    };
    match probe(addr, &path, TIMEOUT) {
        Ok(response) => {
            println!("{}", response.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name} {COMMAND}: GET http://{addr}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where to probe: `target`, else `HEALTH_ADDR` (required: only the binary's
/// config knows its default port). An unspecified address (`0.0.0.0`, `::`),
/// as a server in a container binds, is probed on loopback.
pub fn parse_target(
    vars: &dyn Vars,
    target: Option<&str>,
) -> Result<(SocketAddr, String), ConfigError> {
    let (source, value) = match target {
        Some(t) => ("argument", t.to_owned()),
        None => match crate::config::optional(vars, "HEALTH_ADDR") {
            Some(v) => ("HEALTH_ADDR", v),
            None => {
                return Err(ConfigError::new(
                    "HEALTH_ADDR",
                    format!("is not set: set it or pass the address ({COMMAND} IP:PORT[/PATH])"),
                ));
            }
        },
    };
    let (addr, path) = match value.find('/') {
        Some(i) => (&value[..i], value[i..].to_owned()),
        None => (value.as_str(), DEFAULT_PATH.to_owned()),
    };
    let mut addr: SocketAddr = addr.parse().map_err(|_| {
        ConfigError::new(
            source,
            format!(
                "{value:?} is not an IP:port address such as 127.0.0.1:9101, with an optional /path"
            ),
        )
    })?;
    if addr.port() == 0 {
        return Err(ConfigError::new(
            source,
            format!("{value:?}: port 0 is chosen at start, so it cannot be probed"),
        ));
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok((addr, path))
}

/// GETs `path` on `addr` over HTTP/1.0 (the server closes the connection after
/// one answer, so the response ends at end of file); the response on a 200,
/// else an error with the status line and body.
pub fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("sending: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading: {e}"))?;
    let response = String::from_utf8_lossy(&raw);
    let status = response.lines().next().unwrap_or_default();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(body.to_owned()),
        Some(_) => Err(format!("{status}: {body}")),
        None => Err(format!("not an HTTP response: {response:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: [(&str, &str); 0] = [];

    #[test]
    fn the_target_defaults_to_health_addr_and_readyz_on_loopback() {
        let (addr, path) = parse_target(&[("HEALTH_ADDR", "0.0.0.0:9101")], None).expect("valid");
        assert_eq!(addr.to_string(), "127.0.0.1:9101");
        assert_eq!(path, "/readyz");
        let (addr, path) = parse_target(&NONE, Some("[::]:9200/healthz")).expect("valid");
        assert_eq!(addr.to_string(), "[::1]:9200");
        assert_eq!(path, "/healthz");
    }

    #[test]
    fn a_missing_or_bad_target_names_what_to_fix() {
        let e = parse_target(&NONE, None).expect_err("unset");
        assert_eq!(e.var, "HEALTH_ADDR");
        let e = parse_target(&[("HEALTH_ADDR", "localhost:9101")], None).expect_err("a name");
        assert_eq!(e.var, "HEALTH_ADDR");
        let e = parse_target(&NONE, Some("127.0.0.1:0")).expect_err("port 0");
        assert_eq!(e.var, "argument");
    }

    /// The real health router on a real socket: 200 when ready, the failing
    /// check's 503 otherwise, and a refused connection when nothing listens.
    #[tokio::test(flavor = "multi_thread")]
    async fn probes_the_real_health_server() {
        let ready = telemetry::Readiness::new().check("redis", || async { Ok(()) });
        let failing =
            telemetry::Readiness::new().check("postgres", || async { Err("refused".into()) });
        let mut addrs = Vec::new();
        let stop = queue_core::CancellationToken::new();
        for readiness in [ready, failing] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addrs.push(listener.local_addr().expect("bound"));
            let router = telemetry::health_router(readiness);
            tokio::spawn(telemetry::serve_on(listener, router, stop.clone()));
        }
        let (ready, failing) = (addrs[0], addrs[1]);
        // The probe blocks, as it does in its own process.
        let probe = |addr, path: &'static str| async move {
            tokio::task::spawn_blocking(move || probe(addr, path, TIMEOUT))
                .await
                .expect("probe task")
        };

        let body = probe(ready, "/readyz").await.expect("ready");
        assert!(body.contains("\"ready\""), "{body}");
        let err = probe(failing, "/readyz").await.expect_err("not ready");
        assert!(
            err.starts_with("HTTP/1.0 503") && err.contains("refused"),
            "{err}"
        );
        probe(failing, "/healthz").await.expect("alive");

        // A port just freed: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind");
        probe(closed, "/readyz").await.expect_err("nothing listens");
        stop.cancel();
    }
}
