//! BNB (Banco Nacional de Bolivia) "QR Simple" as a [`Bank`]
//! (`BANK_PROVIDER=bnb`). docs/design.md ("The bank") has the contract, the
//! `statusId` mapping and the error rules; in short:
//!
//! - a token from `POST {BNB_AUTH_URL}/ClientAuthentication.API/api/v1/auth/token`
//!   (`{"accountId", "authorizationId"}` → `{"success": true, "message": token}`),
//!   sent as `Authorization: Bearer`, kept until its JWT `exp` (or
//!   `BNB_TOKEN_LIFETIME`), fetched by one caller at a time (the others wait
//!   for it), and renewed once when a call answers 401;
//! - `POST {BNB_API_URL}/QRSimple.API/api/v1/main/{getQRWithImageAsync,
//!   getQRStatusAsync, CancelQRByIdAsync, getQRbyGenerationDateAsync}`;
//! - `success: false` in a 2xx answer is a refusal (permanent), a 5xx or a
//!   timeout is trouble (retried), 429 is the rate limit (retried).
//!
//! Public clients of this API disagree on shapes, so answers are read
//! tolerantly: keys in any letter case, ids and `statusId` as numbers or
//! strings, the image as base64 text (a `data:` URL too) or a byte array.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use service::upstream::excerpt;
use store::payments::PaymentStatus;

use crate::bank::{Bank, BankError, BankFuture, CreateQr, CreatedQr, QrStatus};
use crate::config::BnbConfig;

/// The token route under `BNB_AUTH_URL`.
pub const TOKEN_PATH: &str = "/ClientAuthentication.API/api/v1/auth/token";
/// The QR routes' prefix under `BNB_API_URL`.
pub const QR_PATH: &str = "/QRSimple.API/api/v1/main";

/// The gloss of a payment created without a description (BNB requires one).
pub const DEFAULT_GLOSS: &str = "Pago QR";

/// Bolivia's time (UTC-4, no daylight saving): BNB's dates are its days.
pub fn bolivia() -> FixedOffset {
    FixedOffset::west_opt(4 * 3600).expect("a valid offset")
}

/// The day a QR expiring at `at` is given as `expirationDate`: the bank takes
/// a date, so the QR stays payable until that day ends in Bolivia.
pub fn expiration_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&bolivia()).date_naive()
}

/// When a QR given `date` as `expirationDate` stops being payable: the end
/// of that day in Bolivia.
pub fn end_of_day(date: NaiveDate) -> DateTime<Utc> {
    let next = date.succ_opt().unwrap_or(date);
    bolivia()
        .from_local_datetime(&next.and_time(NaiveTime::MIN))
        .single()
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

/// A QR of a day's list (`getQRbyGenerationDateAsync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedQr {
    pub qr_id: String,
    /// Its `statusId` mapped (None when the list does not carry it).
    pub status: Option<PaymentStatus>,
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub gloss: Option<String>,
    pub expiration_date: Option<String>,
}

struct Token {
    value: String,
    /// When it stops being used: its `exp` less a margin.
    renew_at: Instant,
}

/// The BNB adapter. One per process: it holds the token.
pub struct BnbBank {
    http: reqwest::Client,
    config: BnbConfig,
    timeout: Duration,
    token: tokio::sync::Mutex<Option<Token>>,
}

impl std::fmt::Debug for BnbBank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BnbBank")
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl BnbBank {
    pub fn new(config: BnbConfig, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Self {
            http,
            config,
            timeout,
            token: tokio::sync::Mutex::new(None),
        })
    }

    fn transport(&self, e: reqwest::Error) -> BankError {
        if e.is_timeout() {
            BankError::Timeout(self.timeout)
        } else {
            BankError::Unreachable(e.without_url().to_string())
        }
    }

    async fn post(
        &self,
        url: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<(u16, Vec<u8>), BankError> {
        let mut request = self.http.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        Ok((status, bytes.to_vec()))
    }

    /// A token to use: the cached one unless it is due for renewal or is
    /// `stale` (the one a call was just refused with). One caller fetches at
    /// a time; the others wait on the lock and then find the fresh token.
    async fn token(&self, stale: Option<&str>) -> Result<String, BankError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && stale != Some(t.value.as_str())
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<Token, BankError> {
        let url = format!("{}{TOKEN_PATH}", self.config.auth_url);
        let body = json!({
            "accountId": self.config.account_id.expose(),
            "authorizationId": self.config.authorization_id.expose(),
        });
        let (status, bytes) = self.post(&url, &body, None).await?;
        let answer = answer_of(status, &bytes).map_err(|e| match e {
            BankError::Rejected { message, .. } => BankError::Rejected {
                field: "BNB_ACCOUNT_ID".into(),
                message: format!("the bank refused the credentials: {message}"),
            },
            other => other,
        })?;
        let value = text(&answer, "message")
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| BankError::BadAnswer("a token answer without a token".into()))?;
        let lifetime = jwt_lifetime(&value, Utc::now()).unwrap_or(self.config.token_lifetime);
        // Renew a little early, so a token does not expire on its way.
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        Ok(Token {
            value,
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        })
    }

    /// POSTs `body` to QR route `route` with the token; a 401 renews the token
    /// once and repeats the call; a second 401 is an error.
    async fn call(&self, route: &str, body: &Value) -> Result<Map<String, Value>, BankError> {
        let url = format!("{}{QR_PATH}/{route}", self.config.api_url);
        let token = self.token(None).await?;
        let (mut status, mut bytes) = self.post(&url, body, Some(&token)).await?;
        if status == 401 {
            tracing::debug!(
                bank.route = route,
                "BNB refused the token; renewing it once"
            );
            let renewed = self.token(Some(&token)).await?;
            (status, bytes) = self.post(&url, body, Some(&renewed)).await?;
            if status == 401 {
                return Err(BankError::Status {
                    status,
                    body: "the bank refused a freshly issued token too".into(),
                });
            }
        }
        answer_of(status, &bytes)
    }

    async fn do_create(&self, request: &CreateQr) -> Result<CreatedQr, BankError> {
        // No expiry asked: the bank's default life, one day.
        let expires = request
            .expires_at
            .unwrap_or_else(|| Utc::now() + chrono::Duration::days(1));
        let date = expiration_date(expires);
        // BNB requires a gloss; our description is optional.
        let gloss = match request.description.trim() {
            "" => DEFAULT_GLOSS,
            _ => request.description.as_str(),
        };
        // The shapes of BNB's own sample request: amount and singleUse as text.
        let mut body = json!({
            "currency": request.currency.as_str(),
            "gloss": gloss,
            "amount": store::payments::format_amount(request.amount_cents),
            "singleUse": "true",
            "expirationDate": date.format("%Y-%m-%d").to_string(),
        });
        if let Some(account) = &self.config.destination_account_id {
            body["destinationAccountId"] = json!(account);
        }
        let answer = self.call("getQRWithImageAsync", &body).await?;
        let qr_id = id_of(&answer)
            .ok_or_else(|| BankError::BadAnswer("a created QR without an id".into()))?;
        let image_base64 = image_of(&answer)?;
        Ok(CreatedQr {
            qr_id,
            status: PaymentStatus::Pending,
            image_base64,
            expires_at: end_of_day(date),
        })
    }

    async fn do_status(&self, qr_id: &str) -> Result<QrStatus, BankError> {
        let answer = self
            .call("getQRStatusAsync", &json!({"qrId": id_value(qr_id)}))
            .await?;
        status_of(&answer)
    }

    async fn do_cancel(&self, qr_id: &str) -> Result<(), BankError> {
        match self
            .call("CancelQRByIdAsync", &json!({"qrId": id_value(qr_id)}))
            .await
        {
            Ok(_) => Ok(()),
            // The refusal's text is the bank's own; its status says whether
            // the QR is paid.
            Err(refused @ BankError::Rejected { .. }) => match self.do_status(qr_id).await {
                Ok(QrStatus {
                    status: PaymentStatus::Completed,
                    ..
                }) => Err(BankError::AlreadyPaid),
                _ => Err(refused),
            },
            Err(other) => Err(other),
        }
    }

    /// The QRs generated on `date` (a Bolivian day), as the bank lists them:
    /// for reconciling the bank's view with the payments table by hand.
    pub async fn qrs_generated_on(&self, date: NaiveDate) -> Result<Vec<ListedQr>, BankError> {
        let answer = self
            .call(
                "getQRbyGenerationDateAsync",
                &json!({"generationDate": date.format("%Y-%m-%d").to_string()}),
            )
            .await?;
        let list = field(&answer, "dTOqrDetails")
            .or_else(|| field(&answer, "qrDetails"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(list
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|qr| {
                Some(ListedQr {
                    qr_id: id_of(qr)?,
                    status: number(qr, "statusId").and_then(status_of_id),
                    amount: text(qr, "amount"),
                    currency: text(qr, "currency"),
                    gloss: text(qr, "gloss"),
                    expiration_date: text(qr, "expirationDate"),
                })
            })
            .collect())
    }
}

impl Bank for BnbBank {
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

/// The JSON object of an answer, or the error it stands for: 429 the rate
/// limit, another non-2xx the HTTP status (with the bank's message), and
/// `success: false` in a 2xx a refusal carrying the bank's `message`.
fn answer_of(status: u16, bytes: &[u8]) -> Result<Map<String, Value>, BankError> {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(bytes).ok();
    if status == 429 {
        return Err(BankError::RateLimited);
    }
    if !(200..300).contains(&status) {
        let body = parsed
            .as_ref()
            .and_then(|a| text(a, "message"))
            .unwrap_or_else(|| excerpt(bytes));
        return Err(BankError::Status { status, body });
    }
    let answer = parsed
        .ok_or_else(|| BankError::BadAnswer(format!("not a JSON object: {}", excerpt(bytes))))?;
    let success = match field(&answer, "success") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.trim().eq_ignore_ascii_case("false"),
        _ => true,
    };
    if !success {
        return Err(BankError::Rejected {
            field: "request".into(),
            message: text(&answer, "message").unwrap_or_else(|| "no message".into()),
        });
    }
    Ok(answer)
}

/// `statusId` → our status: 1 (not used yet) pending, 2 (used) completed with
/// the voucher, 3 (expired) expired; 4 (error) a failed check.
fn status_of(answer: &Map<String, Value>) -> Result<QrStatus, BankError> {
    let Some(id) = number(answer, "statusId") else {
        return Err(BankError::BadAnswer(
            "a QR status without a statusId".into(),
        ));
    };
    if id == 4 {
        return Err(BankError::QrFailed(
            text(answer, "message")
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| "statusId 4".into()),
        ));
    }
    let status = status_of_id(id)
        .ok_or_else(|| BankError::BadAnswer(format!("statusId {id} is not 1, 2, 3 or 4")))?;
    // Unpaid QRs carry voucherId "0" or nothing.
    let voucher_id = text(answer, "voucherId")
        .filter(|v| status == PaymentStatus::Completed && !v.trim().is_empty() && v.trim() != "0");
    Ok(QrStatus { status, voucher_id })
}

fn status_of_id(id: i64) -> Option<PaymentStatus> {
    match id {
        1 => Some(PaymentStatus::Pending),
        2 => Some(PaymentStatus::Completed),
        3 => Some(PaymentStatus::Expired),
        _ => None,
    }
}

/// The value of `key`, whatever its letter case (`statusId`, `StatusId`, `dTOqrDetails`).
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A string or number field as text.
fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match field(object, key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number or numeric-string field as an integer.
fn number(object: &Map<String, Value>, key: &str) -> Option<i64> {
    match field(object, key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The QR's id: `id`, or `qrId` in clients that name it so; text or number.
fn id_of(object: &Map<String, Value>) -> Option<String> {
    text(object, "id")
        .or_else(|| text(object, "qrId"))
        .filter(|id| !id.trim().is_empty())
}

/// How a QR id is sent: a number when it is one (the bank's ids are), else text.
fn id_value(qr_id: &str) -> Value {
    qr_id
        .parse::<i64>()
        .map_or_else(|_| json!(qr_id), |n| json!(n))
}

/// The QR image as base64: `qr` as base64 text (or a `data:` URL), or as an
/// array of bytes.
fn image_of(answer: &Map<String, Value>) -> Result<String, BankError> {
    let bad = |why: &str| BankError::BadAnswer(format!("the QR image {why}"));
    match field(answer, "qr").or_else(|| field(answer, "qrImage")) {
        Some(Value::String(s)) => {
            let b64 = s
                .rsplit_once("base64,")
                .map_or(s.as_str(), |(_, b)| b)
                .trim();
            STANDARD
                .decode(b64)
                .map_err(|_| bad("is not base64"))
                .and_then(|png| {
                    (!png.is_empty())
                        .then(|| b64.to_owned())
                        .ok_or(bad("is empty"))
                })
        }
        Some(Value::Array(items)) => {
            let png = items
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| bad("is an array of something other than bytes"))?;
            if png.is_empty() {
                return Err(bad("is empty"));
            }
            Ok(STANDARD.encode(png))
        }
        _ => Err(bad("is missing")),
    }
}

/// What is left of a JWT's life at `now`, from its `exp` claim; None when it
/// is not a JWT or carries no `exp`.
fn jwt_lifetime(token: &str, now: DateTime<Utc>) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?)
            .ok()?;
    let exp = claims.get("exp")?.as_f64()? as i64;
    Some(Duration::from_secs(
        u64::try_from(exp - now.timestamp()).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    #[test]
    fn status_ids_map_to_statuses_and_a_paid_qr_carries_its_voucher() {
        let read = |v: Value| status_of(&object(v));
        assert_eq!(
            read(json!({"success": true, "statusId": 1, "voucherId": "0"})).expect("1"),
            PaymentStatus::Pending.into()
        );
        assert_eq!(
            read(json!({"statusId": "2", "voucherId": "1J9F121212"})).expect("2"),
            QrStatus {
                status: PaymentStatus::Completed,
                voucher_id: Some("1J9F121212".into())
            }
        );
        // A number, another letter case; "0" is no voucher.
        assert_eq!(
            read(json!({"StatusId": 2, "VoucherId": 778899}))
                .expect("2")
                .voucher_id,
            Some("778899".into())
        );
        assert_eq!(
            read(json!({"statusId": 2, "voucherId": "0"}))
                .expect("2")
                .voucher_id,
            None
        );
        assert_eq!(
            read(json!({"statusId": 3, "expirationDate": "2026-01-01"})).expect("3"),
            PaymentStatus::Expired.into()
        );
        let failed = read(json!({"statusId": 4, "message": "Transacción con error"}));
        assert!(
            matches!(&failed, Err(e @ BankError::QrFailed(m)) if e.is_permanent() && m.contains("error")),
            "{failed:?}"
        );
        for odd in [json!({"statusId": 7}), json!({"id": 59, "qrId": 2})] {
            let e = read(odd.clone()).expect_err("no usable statusId");
            assert!(
                matches!(e, BankError::BadAnswer(_)) && !e.is_permanent(),
                "{odd}"
            );
        }
    }

    #[test]
    fn an_in_body_refusal_is_permanent_and_trouble_is_retried() {
        let refused = answer_of(200, br#"{"success": false, "message": "Moneda no valida"}"#)
            .expect_err("refused");
        match &refused {
            BankError::Rejected { message, .. } => assert_eq!(message, "Moneda no valida"),
            other => panic!("{other:?}"),
        }
        assert!(refused.is_permanent());
        assert!(answer_of(200, br#"{"success": "false", "message": "x"}"#).is_err());
        let down = answer_of(500, br#"{"success": false, "message": "caido"}"#).expect_err("500");
        assert!(
            matches!(&down, BankError::Status { status: 500, body } if body == "caido"),
            "{down:?}"
        );
        assert!(!down.is_permanent());
        assert!(matches!(answer_of(429, b""), Err(BankError::RateLimited)));
        assert!(matches!(
            answer_of(200, b"<html>"),
            Err(BankError::BadAnswer(_))
        ));
        let ok = answer_of(200, br#"{"success": true, "id": 12}"#).expect("ok");
        assert_eq!(id_of(&ok).as_deref(), Some("12"));
    }

    #[test]
    fn the_image_is_read_as_base64_text_a_data_url_or_bytes() {
        let png = [0x89_u8, b'P', b'N', b'G'];
        let b64 = STANDARD.encode(png);
        for answer in [
            json!({"qr": b64}),
            json!({"qr": format!("data:image/png;base64,{b64}")}),
            json!({"qr": png}),
            json!({"QR": png}),
        ] {
            assert_eq!(
                image_of(&object(answer.clone())).expect("an image"),
                b64,
                "{answer}"
            );
        }
        for bad in [
            json!({}),
            json!({"qr": "not base64!"}),
            json!({"qr": [1, 300]}),
            json!({"qr": []}),
        ] {
            assert!(
                matches!(image_of(&object(bad.clone())), Err(BankError::BadAnswer(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_are_read_as_text_and_sent_as_numbers_when_they_are() {
        assert_eq!(
            id_of(&object(json!({"id": 900001}))).as_deref(),
            Some("900001")
        );
        assert_eq!(id_of(&object(json!({"qrId": "59"}))).as_deref(), Some("59"));
        assert_eq!(id_of(&object(json!({"id": ""}))), None);
        assert_eq!(id_value("59"), json!(59));
        assert_eq!(id_value("qr-abc"), json!("qr-abc"));
    }

    #[test]
    fn a_jwt_lives_until_its_exp_and_anything_else_has_no_known_life() {
        let now = Utc::now();
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{}}}"#, now.timestamp() + 600));
        let jwt = format!("eyJhbGciOiJIUzI1NiJ9.{claims}.sig");
        assert_eq!(jwt_lifetime(&jwt, now), Some(Duration::from_secs(600)));
        let past = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{}}}"#, now.timestamp() - 5));
        assert_eq!(
            jwt_lifetime(&format!("h.{past}.s"), now),
            Some(Duration::ZERO)
        );
        let no_exp = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
        assert_eq!(jwt_lifetime(&format!("h.{no_exp}.s"), now), None);
        assert_eq!(jwt_lifetime("an-opaque-token", now), None);
    }

    #[test]
    fn a_qr_expires_at_the_end_of_its_bolivian_day() {
        // 02:00 UTC on the 5th is 22:00 on the 4th in La Paz.
        let at = Utc
            .with_ymd_and_hms(2026, 3, 5, 2, 0, 0)
            .single()
            .expect("valid");
        let date = expiration_date(at);
        assert_eq!(date, NaiveDate::from_ymd_opt(2026, 3, 4).expect("valid"));
        assert_eq!(
            end_of_day(date),
            Utc.with_ymd_and_hms(2026, 3, 5, 4, 0, 0)
                .single()
                .expect("valid")
        );
    }
}
