//! The bank adapter: create a payment QR, read its status, cancel it. [`Bank`] is the
//! trait the gateway and the checks call; [`QrBank`] is its first
//! implementation, for the contract `upstream-sim` serves (`POST /bank/qr`,
//! `GET /bank/qr/{id}/status`, `POST /bank/qr/{id}/cancel`). A real bank (BNB "QR Simple" with its numeric
//! `statusId`) is another implementation mapping its answers to
//! [`PaymentStatus`]. Every call has a timeout; errors say whether another
//! attempt can help and never carry the request body.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::json;
use store::payments::{Currency, PaymentStatus};

use crate::config::BankConfig;
use service::upstream::excerpt;

/// A QR to create.
#[derive(Debug, Clone)]
pub struct CreateQr {
    pub amount_cents: i64,
    pub currency: Currency,
    /// The gloss shown to the payer.
    pub description: String,
    /// None: the bank's default life.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A QR the bank created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedQr {
    pub qr_id: String,
    pub status: PaymentStatus,
    /// The QR image, PNG in base64.
    pub image_base64: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("the bank did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the bank cannot be reached: {0}")]
    Unreachable(String),
    #[error("the bank's rate limit refused the call (HTTP 429)")]
    RateLimited,
    #[error("the bank refused {field}: {message}")]
    Rejected { field: String, message: String },
    #[error("the bank does not know this QR")]
    NotFound,
    /// The bank reports the QR in error (BNB `statusId` 4): no final status;
    /// the check counts as failed (see docs/design.md).
    #[error("the bank reports the QR in error: {0}")]
    QrFailed(String),
    /// Cancelling a QR the bank reports paid: the money is in, nothing to cancel.
    #[error("the QR is paid already; the bank cannot cancel it")]
    AlreadyPaid,
    #[error("the bank answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the bank answered something unusable: {0}")]
    BadAnswer(String),
}

impl BankError {
    /// Whether another attempt cannot help: the bank refuses the request
    /// itself. Timeouts, 5xx, 429 and odd answers are worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Rejected { .. } | Self::NotFound | Self::AlreadyPaid | Self::QrFailed(_) => true,
            Self::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            _ => false,
        }
    }
}

/// A boxed future, so that `dyn Bank` works.
pub type BankFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BankError>> + Send + 'a>>;

/// A QR's status as the bank reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrStatus {
    pub status: PaymentStatus,
    /// The bank's voucher (receipt) of the payment, once paid; stored with the movement.
    pub voucher_id: Option<String>,
}

impl From<PaymentStatus> for QrStatus {
    fn from(status: PaymentStatus) -> Self {
        Self {
            status,
            voucher_id: None,
        }
    }
}

/// What the platform needs of a bank's QR payments.
pub trait Bank: Debug + Send + Sync + 'static {
    /// Creates a single-use QR.
    fn create_qr<'a>(&'a self, request: &'a CreateQr) -> BankFuture<'a, CreatedQr>;
    /// The QR's status now, with its voucher once paid.
    fn qr_status<'a>(&'a self, qr_id: &'a str) -> BankFuture<'a, QrStatus>;
    /// Cancels the QR at the bank, so it can no longer be paid. Cancelling a
    /// QR cancelled already succeeds; [`BankError::NotFound`] for a QR the
    /// bank does not know, [`BankError::AlreadyPaid`] for one it reports paid.
    fn cancel_qr<'a>(&'a self, qr_id: &'a str) -> BankFuture<'a, ()>;
}

/// The bank `config` names (`BANK_PROVIDER`), ready to call.
pub fn connect(config: &BankConfig) -> anyhow::Result<std::sync::Arc<dyn Bank>> {
    Ok(match &config.bnb {
        None => std::sync::Arc::new(QrBank::new(config.clone())?),
        Some(bnb) => std::sync::Arc::new(crate::bnb::BnbBank::new(bnb.clone(), config.timeout)?),
    })
}

/// The adapter for the `upstream-sim` bank contract. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QrBank {
    http: reqwest::Client,
    config: BankConfig,
}

#[derive(Deserialize)]
struct CreatedAnswer {
    qr_id: String,
    status: String,
    image_png_base64: String,
    expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct StatusAnswer {
    status: String,
    #[serde(default)]
    voucher_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    field: Option<String>,
    message: Option<String>,
}

impl QrBank {
    pub fn new(config: BankConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Self { http, config })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.api_key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), BankError> {
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        Ok((status, body.to_vec()))
    }

    fn transport(&self, e: reqwest::Error) -> BankError {
        if e.is_timeout() {
            BankError::Timeout(self.config.timeout)
        } else {
            BankError::Unreachable(e.without_url().to_string())
        }
    }

    async fn do_create(&self, request: &CreateQr) -> Result<CreatedQr, BankError> {
        let mut body = json!({
            "amount": store::payments::format_amount(request.amount_cents),
            "currency": request.currency.as_str(),
            "gloss": request.description,
            "single_use": true,
        });
        if let Some(at) = request.expires_at {
            body["expires_at"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        let url = format!("{}/bank/qr", self.config.url);
        let (status, bytes) = self.send(self.http.post(url).json(&body)).await?;
        match status {
            200 | 201 => {
                let answer: CreatedAnswer = serde_json::from_slice(&bytes)
                    .map_err(|e| BankError::BadAnswer(format!("not a created QR: {e}")))?;
                Ok(CreatedQr {
                    status: parse_status(&answer.status)?,
                    qr_id: answer.qr_id,
                    image_base64: answer.image_png_base64,
                    expires_at: answer.expires_at,
                })
            }
            _ => Err(error_of(status, &bytes)),
        }
    }

    /// `BANK_URL/bank/qr/{qr_id}/{action}`, the id escaped as one segment.
    fn qr_url(&self, qr_id: &str, action: &str) -> Result<reqwest::Url, BankError> {
        let mut url = reqwest::Url::parse(&self.config.url)
            .map_err(|e| BankError::Unreachable(format!("BANK_URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| BankError::Unreachable("BANK_URL cannot be a base".into()))?
            .pop_if_empty()
            .extend(["bank", "qr", qr_id, action]);
        Ok(url)
    }

    async fn do_status(&self, qr_id: &str) -> Result<QrStatus, BankError> {
        let url = self.qr_url(qr_id, "status")?;
        let (status, bytes) = self.send(self.http.get(url)).await?;
        match status {
            200 => {
                let answer: StatusAnswer = serde_json::from_slice(&bytes)
                    .map_err(|e| BankError::BadAnswer(format!("not a QR status: {e}")))?;
                Ok(QrStatus {
                    status: parse_status(&answer.status)?,
                    voucher_id: answer.voucher_id.filter(|v| !v.is_empty()),
                })
            }
            _ => Err(error_of(status, &bytes)),
        }
    }

    async fn do_cancel(&self, qr_id: &str) -> Result<(), BankError> {
        let url = self.qr_url(qr_id, "cancel")?;
        let (status, bytes) = self.send(self.http.post(url)).await?;
        match status {
            200 | 204 => Ok(()),
            409 => Err(BankError::AlreadyPaid),
            _ => Err(error_of(status, &bytes)),
        }
    }
}

fn parse_status(s: &str) -> Result<PaymentStatus, BankError> {
    s.parse().map_err(BankError::BadAnswer)
}

fn error_of(status: u16, body: &[u8]) -> BankError {
    match status {
        429 => BankError::RateLimited,
        404 => BankError::NotFound,
        400 | 422 => {
            let e: Option<ErrorAnswer> = serde_json::from_slice(body).ok();
            let (field, message) = e.map(|e| (e.field, e.message)).unwrap_or((None, None));
            BankError::Rejected {
                field: field.unwrap_or_else(|| "request".into()),
                message: message.unwrap_or_else(|| excerpt(body)),
            }
        }
        _ => BankError::Status {
            status,
            body: excerpt(body),
        },
    }
}

impl Bank for QrBank {
    fn create_qr<'a>(&'a self, request: &'a CreateQr) -> BankFuture<'a, CreatedQr> {
        Box::pin(self.do_create(request))
    }

    fn qr_status<'a>(&'a self, qr_id: &'a str) -> BankFuture<'a, QrStatus> {
        Box::pin(self.do_status(qr_id))
    }

    fn cancel_qr<'a>(&'a self, qr_id: &'a str) -> BankFuture<'a, ()> {
        Box::pin(self.do_cancel(qr_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_trouble_is_retried() {
        assert!(BankError::NotFound.is_permanent());
        assert!(
            BankError::Rejected {
                field: "amount".into(),
                message: "x".into()
            }
            .is_permanent()
        );
        assert!(!BankError::RateLimited.is_permanent());
        assert!(!BankError::Timeout(Duration::from_secs(1)).is_permanent());
        let status = |status| BankError::Status {
            status,
            body: String::new(),
        };
        assert!(!status(500).is_permanent());
        assert!(!status(503).is_permanent());
        assert!(status(401).is_permanent());
    }

    #[test]
    fn answers_map_to_errors_by_status() {
        assert!(matches!(error_of(429, b""), BankError::RateLimited));
        assert!(matches!(error_of(404, b"{}"), BankError::NotFound));
        match error_of(
            400,
            br#"{"error":"invalid_request","message":"amount: bad","field":"amount"}"#,
        ) {
            BankError::Rejected { field, message } => {
                assert_eq!(
                    (field.as_str(), message.as_str()),
                    ("amount", "amount: bad")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error_of(500, b"boom"),
            BankError::Status { status: 500, .. }
        ));
        assert!(parse_status("paid").is_err());
        assert_eq!(
            parse_status("active").expect("valid"),
            PaymentStatus::Active
        );
    }
}
