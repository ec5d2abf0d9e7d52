//! The bank's BNB "QR Simple" mode: BNB's routes, served beside the
//! simulator's own contract, over the same QRs and scripts.
//!
//! - `POST /ClientAuthentication.API/api/v1/auth/token` issues a JWT (its
//!   `exp` after `bnb_token_ttl_ms`) for the configured credentials;
//! - `POST /QRSimple.API/api/v1/main/{getQRWithImageAsync, getQRStatusAsync,
//!   CancelQRByIdAsync, getQRbyGenerationDateAsync}` (the route's letter case
//!   is free: clients write `getQRByGenerationDateAsync` too) answer 401 for a
//!   missing, unknown or expired token, and refuse a request with HTTP 200
//!   `{"success": false, "message"}`, as BNB does.
//!
//! Tolerant as the bank is where its public clients disagree: `qrId` or `id`,
//! ids and amounts as numbers or strings, `singleUse` as a boolean or a string.
//! A QR's script steps answer `statusId` 1 (pending, processing, active),
//! 2 (completed, with `voucherId`), 3 (expired, and cancelled: BNB lists no
//! cancelled status) and 4 (error).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::{
    BankControl, Cancelled, PLACEHOLDER_PNG_BASE64, Qr, QrStatus, gate, script_from_gloss,
    valid_amount,
};
use crate::SimState;
use crate::faults::lock;

/// The token route.
pub const TOKEN_PATH: &str = "/ClientAuthentication.API/api/v1/auth/token";
/// The QR routes' prefix.
pub const QR_PATH: &str = "/QRSimple.API/api/v1/main";
/// The credentials the simulator accepts unless configured otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "sim-bnb-account";
pub const DEFAULT_AUTHORIZATION_ID: &str = "sim-bnb-authorization";

/// Bolivia's time (UTC-4): BNB's dates are its days.
fn bolivia() -> FixedOffset {
    FixedOffset::west_opt(4 * 3600).expect("a valid offset")
}

/// The Bolivian day of `at`.
pub fn bolivian_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&bolivia()).date_naive()
}

/// The end of Bolivian day `date`, when a QR given it as `expirationDate` expires.
fn end_of_day(date: NaiveDate) -> DateTime<Utc> {
    let next = date.succ_opt().unwrap_or(date);
    bolivia()
        .from_local_datetime(&next.and_time(NaiveTime::MIN))
        .single()
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

/// BNB's `statusId` of a script step.
pub fn status_id(status: QrStatus) -> u8 {
    match status {
        QrStatus::Pending | QrStatus::Processing | QrStatus::Active => 1,
        QrStatus::Completed => 2,
        QrStatus::Expired | QrStatus::Cancelled => 3,
        QrStatus::Error => 4,
    }
}

pub fn router() -> Router<SimState> {
    Router::new()
        .route(TOKEN_PATH, post(issue_token))
        .route(&format!("{QR_PATH}/{{operation}}"), post(qr_operation))
}

/// HTTP 200 `{"success": false, "message"}`: how BNB refuses.
fn refused(message: &str) -> Response {
    Json(json!({"success": false, "message": message})).into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Authorization has been denied for this request."})),
    )
        .into_response()
}

/// The value of `key`, whatever its letter case.
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
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn body_object(body: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .as_object()
        .cloned()
}

impl BankControl {
    /// A new JWT, valid for the `bnb_token_ttl_ms` knob (with an `exp` claim
    /// unless `bnb_token_exp` is off).
    fn issue_token(&self) -> String {
        let (ttl, with_exp) = {
            let k = lock(&self.inner.knobs);
            (k.bnb_token_ttl, k.bnb_token_exp)
        };
        let n = self.inner.counters.tokens.fetch_add(1, Ordering::SeqCst) + 1;
        let mut claims = json!({"sub": "upstream-sim", "jti": n});
        if with_exp {
            // Whole seconds, rounded up, so a short test TTL is not cut to zero.
            let exp = Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
            claims["exp"] = json!(exp + i64::from(ttl.subsec_nanos() > 0));
        }
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(format!("sig-{n}")),
        );
        lock(&self.inner.tokens).insert(token.clone(), Instant::now() + ttl);
        token
    }

    /// Whether `headers` carry a token this bank issued that has not expired.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let mut tokens = lock(&self.inner.tokens);
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.contains_key(token.trim())
    }

    /// Forgets every token issued: the next QR call with one gets a 401.
    pub fn revoke_bnb_tokens(&self) {
        lock(&self.inner.tokens).clear();
    }

    /// Tokens issued so far.
    pub fn bnb_tokens_issued(&self) -> u64 {
        self.inner.counters.tokens.load(Ordering::SeqCst)
    }

    /// Takes one from a knob counting down; true when there was one.
    fn take(&self, knob: impl FnOnce(&mut super::BankKnobs) -> &mut u32) -> bool {
        let mut k = lock(&self.inner.knobs);
        let left = knob(&mut k);
        if *left > 0 {
            *left -= 1;
            true
        } else {
            false
        }
    }
}

async fn issue_token(State(state): State<SimState>, body: Bytes) -> Response {
    if let Some(response) = gate(&state).await {
        return response;
    }
    let bank = state.bank();
    let Some(body) = body_object(&body) else {
        return refused("accountId y authorizationId son requeridos");
    };
    let given = (text(&body, "accountId"), text(&body, "authorizationId"));
    let expected = &bank.inner.bnb_credentials;
    match given {
        (Some(account), Some(authorization))
            if account == expected.0.expose() && authorization == expected.1.expose() =>
        {
            Json(json!({"success": true, "message": bank.issue_token()})).into_response()
        }
        (Some(_), Some(_)) => refused("Credenciales inválidas"),
        _ => refused("accountId y authorizationId son requeridos"),
    }
}

async fn qr_operation(
    State(state): State<SimState>,
    Path(operation): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = gate(&state).await {
        return response;
    }
    let bank = state.bank();
    let c = &bank.inner.counters;
    if bank.take(|k| &mut k.bnb_unauthorized_next) || !bank.authorized(&headers) {
        c.unauthorized.fetch_add(1, Ordering::SeqCst);
        return unauthorized();
    }
    if bank.take(|k| &mut k.bnb_refuse_next) {
        c.refused.fetch_add(1, Ordering::SeqCst);
        return refused("Error al procesar la solicitud (simulado)");
    }
    let Some(body) = body_object(&body) else {
        return refused("La solicitud no es un objeto JSON");
    };
    match operation.to_ascii_lowercase().as_str() {
        "getqrwithimageasync" => create(bank, &body),
        "getqrstatusasync" => status(bank, &body),
        "cancelqrbyidasync" => cancel(bank, &body),
        "getqrbygenerationdateasync" => list(bank, &body),
        _ => crate::error_body(StatusCode::NOT_FOUND, "path", "no such route"),
    }
}

/// A create request's fields, or the refusal naming the one at fault.
struct NewQr {
    amount: String,
    currency: String,
    gloss: String,
    single_use: bool,
    expiration: NaiveDate,
}

fn parse_create(body: &Map<String, Value>, today: NaiveDate) -> Result<NewQr, String> {
    let currency = match text(body, "currency").as_deref() {
        Some(c @ ("BOB" | "USD")) => c.to_owned(),
        _ => return Err("currency: debe ser BOB o USD".into()),
    };
    let gloss = match field(body, "gloss") {
        Some(Value::String(g)) if !g.trim().is_empty() && g.chars().count() <= 200 => g.clone(),
        _ => return Err("gloss: es requerida (hasta 200 caracteres)".into()),
    };
    // A string ("150.00") or a number (150.5): both seen in public clients.
    let amount = match field(body, "amount") {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if !valid_amount(&amount) {
        return Err("amount: debe ser un monto positivo con hasta dos decimales".into());
    }
    let single_use = match field(body, "singleUse") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err("singleUse: debe ser true o false".into()),
    };
    // `YYYY-MM-DD`; a full timestamp's date part is taken too.
    let expiration = text(body, "expirationDate")
        .and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok())
        .ok_or("expirationDate: debe ser una fecha AAAA-MM-DD")?;
    if expiration < today {
        return Err("expirationDate: no puede ser anterior a hoy".into());
    }
    Ok(NewQr {
        amount,
        currency,
        gloss,
        single_use,
        expiration,
    })
}

fn create(bank: &BankControl, body: &Map<String, Value>) -> Response {
    let now = Utc::now();
    let new = match parse_create(body, bolivian_date(now)) {
        Ok(new) => new,
        Err(message) => return refused(&message),
    };
    let script = match script_from_gloss(&new.gloss) {
        Some(Ok(script)) => script,
        Some(Err(e)) => return refused(&format!("gloss: script: {e}")),
        None => bank.knobs().default_script,
    };
    let n = bank.inner.counters.bnb_ids.fetch_add(1, Ordering::SeqCst) + 1;
    let id = 1000 + n;
    let qr = Qr {
        qr_id: id.to_string(),
        voucher_id: format!("{:010}", 7_000_000_000 + n * 7),
        amount: new.amount,
        currency: new.currency,
        gloss: new.gloss,
        single_use: new.single_use,
        expires_at: end_of_day(new.expiration),
        created_at: now,
        script,
        reads: 0,
        bnb: true,
    };
    tracing::debug!(qr.id = %qr.qr_id, script = ?qr.script, "BNB QR created");
    lock(&bank.inner.qrs).insert(qr.qr_id.clone(), qr);
    bank.inner.counters.creations.fetch_add(1, Ordering::SeqCst);
    let image = if bank.knobs().bnb_image_as_bytes {
        json!(STANDARD.decode(PLACEHOLDER_PNG_BASE64).unwrap_or_default())
    } else {
        json!(PLACEHOLDER_PNG_BASE64)
    };
    Json(json!({"id": id, "qr": image, "success": true, "message": "QR generado"})).into_response()
}

/// The QR id of a status or cancel request: `qrId`, or `id` as some clients send.
fn requested_id(body: &Map<String, Value>) -> Option<String> {
    text(body, "qrId")
        .or_else(|| text(body, "id"))
        .filter(|id| !id.is_empty())
}

fn status(bank: &BankControl, body: &Map<String, Value>) -> Response {
    let Some(qr_id) = requested_id(body) else {
        return refused("qrId es requerido");
    };
    let now = Utc::now();
    let read = {
        let mut qrs = lock(&bank.inner.qrs);
        qrs.get_mut(&qr_id).map(|qr| {
            let status = qr.status_at(qr.reads, now);
            qr.reads += 1;
            (status, qr.voucher_id.clone(), qr.expires_at)
        })
    };
    let Some((status, voucher, expires_at)) = read else {
        return refused("QR no encontrado");
    };
    bank.inner
        .counters
        .status_reads
        .fetch_add(1, Ordering::SeqCst);
    let id = status_id(status);
    Json(json!({
        "success": true,
        "message": if id == 4 { "El QR tiene un error" } else { "" },
        "id": qr_id.parse::<u64>().map_or_else(|_| json!(qr_id), |n| json!(n)),
        "statusId": id,
        "expirationDate": bolivian_date(expires_at - chrono::Duration::seconds(1)).to_string(),
        "voucherId": if status == QrStatus::Completed { voucher } else { "0".to_owned() },
    }))
    .into_response()
}

fn cancel(bank: &BankControl, body: &Map<String, Value>) -> Response {
    let Some(qr_id) = requested_id(body) else {
        return refused("qrId es requerido");
    };
    match bank.cancel(&qr_id) {
        Cancelled::Ended(QrStatus::Cancelled) => {
            Json(json!({"success": true, "message": "QR anulado"})).into_response()
        }
        Cancelled::Ended(_) => refused("El QR ya expiró"),
        Cancelled::AlreadyPaid => refused("El QR ya fue pagado y no puede anularse"),
        Cancelled::Unknown => refused("QR no encontrado"),
    }
}

fn list(bank: &BankControl, body: &Map<String, Value>) -> Response {
    let Some(date) = text(body, "generationDate")
        .and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok())
    else {
        return refused("generationDate: debe ser una fecha AAAA-MM-DD");
    };
    let now = Utc::now();
    let details: Vec<Value> = bank
        .qrs()
        .into_iter()
        .filter(|qr| qr.bnb && bolivian_date(qr.created_at) == date)
        .map(|qr| {
            // The status the next read would answer, without reading it.
            let status = qr.status_at(qr.reads, now);
            json!({
                "id": qr.qr_id.parse::<u64>().unwrap_or_default(),
                "gloss": qr.gloss,
                "amount": qr.amount,
                "currency": qr.currency,
                "statusId": status_id(status),
                "expirationDate": bolivian_date(qr.expires_at - chrono::Duration::seconds(1)).to_string(),
                "generationDate": date.to_string(),
            })
        })
        .collect();
    Json(json!({"success": true, "message": "", "dTOqrDetails": details})).into_response()
}

/// How long tokens live unless configured otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_request_takes_either_shape_and_names_a_bad_field() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 4).expect("valid");
        let body = |v: Value| v.as_object().expect("object").clone();
        let text_shapes = parse_create(
            &body(json!({"currency": "BOB", "gloss": "g", "amount": "150.00",
                         "singleUse": "true", "expirationDate": "2026-03-04"})),
            today,
        )
        .expect("valid");
        assert_eq!(
            (text_shapes.amount.as_str(), text_shapes.single_use),
            ("150.00", true)
        );
        let number_shapes = parse_create(
            &body(json!({"currency": "USD", "gloss": "g", "amount": 150.5,
                         "singleUse": false, "expirationDate": "2026-03-05T10:00:00Z"})),
            today,
        )
        .expect("valid");
        assert_eq!(
            (
                number_shapes.amount.as_str(),
                number_shapes.single_use,
                number_shapes.expiration
            ),
            (
                "150.5",
                false,
                NaiveDate::from_ymd_opt(2026, 3, 5).expect("valid")
            )
        );
        for (bad, field) in [
            (
                json!({"currency": "EUR", "gloss": "g", "amount": "1", "expirationDate": "2026-03-04"}),
                "currency",
            ),
            (
                json!({"currency": "BOB", "amount": "1", "expirationDate": "2026-03-04"}),
                "gloss",
            ),
            (
                json!({"currency": "BOB", "gloss": "g", "amount": "1.234", "expirationDate": "2026-03-04"}),
                "amount",
            ),
            (
                json!({"currency": "BOB", "gloss": "g", "amount": -1, "expirationDate": "2026-03-04"}),
                "amount",
            ),
            (
                json!({"currency": "BOB", "gloss": "g", "amount": "1", "singleUse": "si", "expirationDate": "2026-03-04"}),
                "singleUse",
            ),
            (
                json!({"currency": "BOB", "gloss": "g", "amount": "1", "expirationDate": "04/03/2026"}),
                "expirationDate",
            ),
            (
                json!({"currency": "BOB", "gloss": "g", "amount": "1", "expirationDate": "2026-03-03"}),
                "expirationDate",
            ),
        ] {
            let message = parse_create(&body(bad.clone()), today)
                .err()
                .expect("refused");
            assert!(message.starts_with(field), "{bad}: {message}");
        }
    }

    #[test]
    fn every_step_has_a_status_id() {
        use QrStatus::*;
        let ids: Vec<u8> = [
            Pending, Processing, Active, Completed, Expired, Cancelled, Error,
        ]
        .into_iter()
        .map(status_id)
        .collect();
        assert_eq!(ids, [1, 1, 1, 2, 3, 3, 4]);
    }
}
