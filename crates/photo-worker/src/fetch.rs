//! Fetching a photo given by URL without letting the URL reach inside our network.
//!
//! A URL is a request made on the user's behalf from inside the cluster, so it
//! could name the cloud metadata service (169.254.169.254), a database on a
//! private address, or a host whose DNS answers 127.0.0.1. Each hop is checked
//! before any connection: the scheme (`http`/`https`), no credentials, the host
//! on `PHOTO_FETCH_ALLOWED_HOSTS`; then the name is resolved here, every
//! address it resolves to is vetted (loopback, private, link-local, unique
//! local, CGNAT, multicast, unspecified, reserved and documentation ranges of
//! IPv4 and IPv6, IPv4 inside IPv6 included) and the TCP connection is opened
//! here, to exactly a vetted address, so a second DNS answer cannot swap it
//! (DNS rebinding); HTTP/1.1 (hyper) runs over that socket, with TLS (rustls,
//! ring, the Mozilla roots of `webpki-roots`) for `https`. Redirects are
//! followed by hand, each hop checked the same way. No proxy is ever used. The
//! body is capped while it streams, and the whole fetch has one deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{ACCEPT, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use url_guard::host_of;
pub use url_guard::{AllowedHosts, forbidden};

/// How photos are fetched by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// `PHOTO_FETCH_ALLOWED_HOSTS`, default none: fetching by URL is off.
    pub allowed_hosts: AllowedHosts,
    /// `PHOTO_FETCH_TIMEOUT`, default 20s: the whole fetch, redirects included.
    pub timeout: Duration,
    /// `PHOTO_FETCH_MAX_BYTES`, default 25 MiB.
    pub max_bytes: u64,
    /// `PHOTO_FETCH_MAX_REDIRECTS`, default 5.
    pub max_redirects: u32,
    /// `PHOTO_FETCH_ALLOW_LOOPBACK`, default false: for tests and demos only,
    /// lets an allowed host resolve to a loopback address (127.0.0.0/8, ::1).
    /// Every other refused range stays refused.
    pub allow_loopback: bool,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allowed_hosts: AllowedHosts::default(),
            timeout: Duration::from_secs(20),
            max_bytes: 25 * 1024 * 1024,
            max_redirects: 5,
            allow_loopback: false,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL, a redirect or an address is not allowed: never retried.
    #[error("refused to fetch {url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("{url} is larger than PHOTO_FETCH_MAX_BYTES ({limit} bytes)")]
    TooLarge { url: String, limit: u64 },
    #[error("fetching the photo took longer than PHOTO_FETCH_TIMEOUT ({0:?})")]
    Timeout(Duration),
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("resolving {host}: {reason}")]
    Dns { host: String, reason: String },
    #[error("fetching {url}: {reason}")]
    Network { url: String, reason: String },
}

impl FetchError {
    /// Whether another attempt cannot help: a refusal, a photo too large, or
    /// a 4xx answer other than 408 and 429.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Refused { .. } | Self::TooLarge { .. } => true,
            Self::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            Self::Timeout(_) | Self::Dns { .. } | Self::Network { .. } => false,
        }
    }
}

/// A fetched photo.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// Where it was found after redirects.
    pub url: String,
}

/// Fetches photos by URL under a [`FetchPolicy`]. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    policy: FetchPolicy,
    tls: TlsConnector,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Aborts the task driving a connection when the hop is over.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            policy,
            tls: TlsConnector::from(Arc::new(tls)),
        }
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// The URL parsed, if its syntax, scheme and host may be fetched at all
    /// (before any DNS): what the gateway checks up front, and every hop here.
    pub fn check_url(&self, raw: &str) -> Result<Url, FetchError> {
        url_guard::check_url(&self.policy.allowed_hosts, raw).map_err(|reason| {
            FetchError::Refused {
                url: redact(raw),
                reason,
            }
        })
    }

    /// Fetches `url`, following at most `max_redirects` redirects, each hop
    /// checked; within `timeout` altogether and `max_bytes` of body.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        tokio::time::timeout(self.policy.timeout, self.fetch_within(url))
            .await
            .map_err(|_| FetchError::Timeout(self.policy.timeout))?
    }

    async fn fetch_within(&self, raw: &str) -> Result<Fetched, FetchError> {
        let mut url = self.check_url(raw)?;
        let mut redirects = 0;
        loop {
            let shown = redact(url.as_str());
            let addrs = self.vetted_addresses(&url).await?;
            let (response, _connection) = self.get(&url, &addrs).await?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| FetchError::Refused {
                        url: shown.clone(),
                        reason: format!("HTTP {} without a usable Location", status.as_u16()),
                    })?;
                if redirects >= self.policy.max_redirects {
                    return Err(FetchError::Refused {
                        url: shown,
                        reason: format!(
                            "more than PHOTO_FETCH_MAX_REDIRECTS ({}) redirects",
                            self.policy.max_redirects
                        ),
                    });
                }
                let next = url.join(location).map_err(|e| FetchError::Refused {
                    url: shown.clone(),
                    reason: format!("a redirect to {location:?}, not a URL: {e}"),
                })?;
                url = self.check_url(next.as_str())?;
                redirects += 1;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status {
                    url: shown,
                    status: status.as_u16(),
                });
            }
            let limit = self.policy.max_bytes;
            let too_large = || FetchError::TooLarge {
                url: shown.clone(),
                limit,
            };
            let declared = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| FetchError::Network {
                    url: shown.clone(),
                    reason: error_chain(&e),
                })?;
                if let Some(chunk) = frame.data_ref() {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(chunk);
                }
            }
            return Ok(Fetched {
                bytes,
                url: url.to_string(),
            });
        }
    }

    /// One GET over a connection of our own to one of `addrs` (tried in
    /// order), TLS for `https`. The connection lives as long as the guard.
    async fn get(
        &self,
        url: &Url,
        addrs: &[SocketAddr],
    ) -> Result<(hyper::Response<Incoming>, AbortOnDrop), FetchError> {
        let shown = redact(url.as_str());
        let network = |reason: String| FetchError::Network {
            url: shown.clone(),
            reason,
        };
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = Some(format!("connecting to {addr}: {e}")),
            }
        }
        let tcp = tcp.ok_or_else(|| network(last.unwrap_or_else(|| "no address".into())))?;
        let host = host_of(url).unwrap_or_default();
        let request = hyper::Request::get(
            url[url::Position::BeforePath..url::Position::AfterQuery].to_owned(),
        )
        .header(
            HOST,
            &url[url::Position::BeforeHost..url::Position::AfterPort],
        )
        .header(ACCEPT, "image/jpeg, image/png")
        .header(
            USER_AGENT,
            concat!("rsq-photo-worker/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| network(format!("building the request: {e}")))?;
        let sent = if url.scheme() == "https" {
            let name = match url.host() {
                Some(Host::Ipv4(ip)) => ServerName::IpAddress(IpAddr::V4(ip).into()),
                Some(Host::Ipv6(ip)) => ServerName::IpAddress(IpAddr::V6(ip).into()),
                _ => ServerName::try_from(host.clone())
                    .map_err(|e| network(format!("not a TLS server name: {e}")))?,
            };
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| network(format!("TLS: {e}")))?;
            send_over(TokioIo::new(tls), request).await
        } else {
            send_over(TokioIo::new(tcp), request).await
        };
        sent.map_err(|(stage, e)| network(format!("{stage}{}", error_chain(&e))))
    }

    /// The addresses of `url`'s host, resolved here; an error if any of them
    /// is refused (a name that also resolves inside is not trusted at all).
    async fn vetted_addresses(&self, url: &Url) -> Result<Vec<SocketAddr>, FetchError> {
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(Host::Domain(domain)) => tokio::net::lookup_host((domain, port))
                .await
                .map_err(|e| FetchError::Dns {
                    host: domain.to_owned(),
                    reason: e.to_string(),
                })?
                .collect(),
            None => Vec::new(),
        };
        let host = host_of(url).unwrap_or_default();
        if addrs.is_empty() {
            return Err(FetchError::Dns {
                host,
                reason: "no address".into(),
            });
        }
        for addr in &addrs {
            if let Some(why) = forbidden(addr.ip(), self.policy.allow_loopback) {
                return Err(FetchError::Refused {
                    url: redact(url.as_str()),
                    reason: format!("{host} resolves to {}, a {why} address", addr.ip()),
                });
            }
        }
        Ok(addrs)
    }
}

/// The host of a URL: a name, or an IP literal (IPv6 without brackets).
/// A URL as shown in errors and logs: without its query (it may hold a token).
fn redact(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.query().is_some() {
                url.set_query(Some("…"));
            }
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => raw.chars().take(200).collect(),
    }
}

/// Sends `request` over one HTTP/1 connection on `io` (plain TCP or TLS); the
/// connection is driven by a task that stops with the returned guard. An error
/// comes with the stage it names first (`HTTP handshake: ` or nothing).
async fn send_over<T>(
    io: TokioIo<T>,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<(hyper::Response<Incoming>, AbortOnDrop), (&'static str, hyper::Error)>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = http1::handshake(io)
        .await
        .map_err(|e| ("HTTP handshake: ", e))?;
    let guard = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await.map_err(|e| ("", e))?;
    Ok((response, guard))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_url_is_a_permanent_error_without_its_credentials() {
        let fetcher = Fetcher::new(FetchPolicy {
            allowed_hosts: "photos.example.com".parse().expect("valid"),
            ..FetchPolicy::default()
        });
        assert!(
            fetcher
                .check_url("https://photos.example.com/a.jpg")
                .is_ok()
        );
        for (bad, why) in url_guard::testing::REFUSED_URLS {
            let err = fetcher.check_url(bad).expect_err(bad);
            assert!(err.is_permanent(), "{err}");
            assert!(err.to_string().contains(why), "{bad}: {err}");
            assert!(!err.to_string().contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn only_errors_another_attempt_cannot_fix_are_permanent() {
        let status = |status| FetchError::Status {
            url: "u".into(),
            status,
        };
        assert!(status(404).is_permanent());
        assert!(!status(429).is_permanent());
        assert!(!status(503).is_permanent());
        assert!(!FetchError::Timeout(Duration::from_secs(1)).is_permanent());
    }
}
