//! The Wispro client: one page of clients per request, with the bare-token
//! `Authorization` header. Wispro often answers errors with HTTP 200 and the
//! real status in the body, so the body's `status` decides, not only the HTTP
//! code.

use std::time::Duration;

use serde::Deserialize;

use crate::config::WisproConfig;

/// One client as the sync reads it (the fields it writes, plus its ids).
#[derive(Debug, Clone, Deserialize)]
pub struct Client {
    pub id: String,
    #[serde(default)]
    pub public_id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub phone_mobile: Option<String>,
    #[serde(default)]
    pub national_identification_number: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    status: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(default)]
    data: Option<Vec<Client>>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    pagination: Pagination,
}

/// Wispro's pagination block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Pagination {
    pub total_records: u64,
    pub total_pages: u32,
    pub per_page: u32,
    pub current_page: u32,
}

/// One page of clients.
#[derive(Debug)]
pub struct Page {
    pub pagination: Pagination,
    pub clients: Vec<Client>,
}

#[derive(Debug, thiserror::Error)]
pub enum WisproError {
    /// The API refused or failed the request: the body's (or HTTP) status.
    #[error("wispro answered status {status}: {message}")]
    Api { status: u16, message: String },
    #[error("wispro did not answer within {0:?}")]
    Timeout(Duration),
    #[error("wispro cannot be reached: {0}")]
    Unreachable(String),
    #[error("wispro answered something that is no page of clients: {0}")]
    BadAnswer(String),
    /// A page before the last came back with no clients: no answer to trust
    /// (the run would end early and miss every customer after it).
    #[error("wispro answered page {page} of {total_pages} with no clients")]
    EmptyPage { page: u32, total_pages: u32 },
}

impl WisproError {
    /// Whether retrying cannot help: a bad token (401), an expired licence
    /// (402), a missing resource (404) or a refused request (412).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Api { status, .. } if matches!(status, 401 | 402 | 403 | 404 | 412))
    }
}

/// A client of the Wispro API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WisproClient {
    http: reqwest::Client,
    config: WisproConfig,
}

impl WisproClient {
    pub fn new(config: WisproConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(Self { http, config })
    }

    /// Page `page` (1-based) of `per_page` clients. A page past the last
    /// (Wispro has fewer now) comes back empty; one before it never does.
    pub async fn page(&self, page: u32, per_page: u32) -> Result<Page, WisproError> {
        let url = format!(
            "{}/api/v1/clients?page={page}&per_page={per_page}",
            self.config.url
        );
        let response = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, self.config.token.expose())
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let http_status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        let envelope: Envelope = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(_) if !http_status.is_success() => {
                return Err(WisproError::Api {
                    status: http_status.as_u16(),
                    message: "no JSON body".into(),
                });
            }
            Err(e) => return Err(WisproError::BadAnswer(e.to_string())),
        };
        let status = envelope.status.unwrap_or(http_status.as_u16());
        if status != 200 || !http_status.is_success() {
            let status = if status == 200 {
                http_status.as_u16()
            } else {
                status
            };
            return Err(WisproError::Api {
                status,
                message: envelope.message.unwrap_or_else(|| "no message".into()),
            });
        }
        match (envelope.meta, envelope.data) {
            (Some(meta), Some(clients))
                if clients.is_empty() && page <= meta.pagination.total_pages =>
            {
                Err(WisproError::EmptyPage {
                    page,
                    total_pages: meta.pagination.total_pages,
                })
            }
            (Some(meta), Some(clients)) => Ok(Page {
                pagination: meta.pagination,
                clients,
            }),
            _ => Err(WisproError::BadAnswer("no meta.pagination or data".into())),
        }
    }

    fn transport(&self, e: reqwest::Error) -> WisproError {
        if e.is_timeout() {
            WisproError::Timeout(self.config.timeout)
        } else {
            WisproError::Unreachable(e.without_url().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_server_trouble_is_not() {
        let api = |status| WisproError::Api {
            status,
            message: String::new(),
        };
        for s in [401, 402, 404, 412] {
            assert!(api(s).is_permanent(), "{s}");
        }
        for s in [429, 500, 503] {
            assert!(!api(s).is_permanent(), "{s}");
        }
        assert!(!WisproError::Timeout(Duration::from_secs(1)).is_permanent());
        let empty = WisproError::EmptyPage {
            page: 3,
            total_pages: 5,
        };
        assert!(!empty.is_permanent(), "read again");
    }
}
