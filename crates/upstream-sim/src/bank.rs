//! The bank's QR payments (Bolivia, BOB): create a QR, read its status, cancel
//! it. Each QR
//! follows a script of statuses, one step per status read, staying on the last
//! step, so a payment-check worker can be driven through any progression. The
//! script comes from the default knob, from the gloss (`script:pending,completed`)
//! or from the handle / `POST /_sim/bank/qr/{id}/script`; `POST
//! /_sim/bank/qr/{id}/pay` pays it (its next read answers `completed`, with
//! its voucher). [`bnb`] serves the same QRs under BNB "QR Simple"'s routes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use service::Secret;

use crate::SimState;
use crate::faults::{self, Faults, Roll, fault_setters, lock};

pub mod bnb;

/// A 1x1 PNG: the simulator does not draw real QR codes.
pub const PLACEHOLDER_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// The status of a QR, as the replaced system tracked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QrStatus {
    Pending,
    Processing,
    Active,
    Completed,
    Cancelled,
    Expired,
    /// BNB's `statusId` 4: the bank reports the QR in error (not final). The
    /// own contract answers it as `error`, which is no payment status.
    Error,
}

impl QrStatus {
    fn is_final(self) -> bool {
        matches!(
            self,
            QrStatus::Completed | QrStatus::Cancelled | QrStatus::Expired
        )
    }
}

impl std::str::FromStr for QrStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "pending" => Ok(QrStatus::Pending),
            "processing" => Ok(QrStatus::Processing),
            "active" => Ok(QrStatus::Active),
            "completed" => Ok(QrStatus::Completed),
            "cancelled" => Ok(QrStatus::Cancelled),
            "expired" => Ok(QrStatus::Expired),
            "error" => Ok(QrStatus::Error),
            other => Err(format!(
                "{other:?} is not a status (pending, processing, active, completed, cancelled, expired, error)"
            )),
        }
    }
}

/// A comma-separated script such as `pending,pending,completed`.
pub fn parse_script(text: &str) -> Result<Vec<QrStatus>, String> {
    let script: Vec<QrStatus> = text.split(',').map(str::parse).collect::<Result<_, _>>()?;
    if script.is_empty() {
        return Err("a script needs at least one status".to_owned());
    }
    Ok(script)
}

/// The script a gloss asks for with `script:a,b,c` (up to the next blank).
pub fn script_from_gloss(gloss: &str) -> Option<Result<Vec<QrStatus>, String>> {
    let start = gloss.find("script:")? + "script:".len();
    let text = gloss[start..].split_whitespace().next().unwrap_or("");
    Some(parse_script(text))
}

/// The script a QR follows when nothing else says: `pending, pending, completed`.
pub fn default_script() -> Vec<QrStatus> {
    vec![QrStatus::Pending, QrStatus::Pending, QrStatus::Completed]
}

/// The bank's settings at start.
#[derive(Debug, Clone)]
pub struct BankConfig {
    /// How long a QR lives when the request gives no `expires_at`.
    pub qr_ttl: Duration,
    /// The BNB mode's `accountId`, which its token route accepts.
    pub bnb_account_id: Secret,
    /// The BNB mode's `authorizationId`.
    pub bnb_authorization_id: Secret,
    /// The knobs at start.
    pub knobs: BankKnobs,
}

impl Default for BankConfig {
    fn default() -> Self {
        Self {
            qr_ttl: Duration::from_secs(15 * 60),
            bnb_account_id: Secret::new(bnb::DEFAULT_ACCOUNT_ID),
            bnb_authorization_id: Secret::new(bnb::DEFAULT_AUTHORIZATION_ID),
            knobs: BankKnobs::default(),
        }
    }
}

/// The bank's run-time knobs. JSON: the [`Faults`] keys plus the fields below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BankKnobs {
    #[serde(flatten)]
    pub faults: Faults,
    /// Answer HTTP 429 to requests over this many in one second; `null` for no limit.
    pub rate_limit_per_sec: Option<u32>,
    /// The script of QRs whose gloss names none.
    pub default_script: Vec<QrStatus>,
    /// BNB mode: how long a token lives.
    #[serde(rename = "bnb_token_ttl_ms", with = "crate::faults::millis")]
    pub bnb_token_ttl: Duration,
    /// BNB mode: whether tokens carry an `exp` claim (off: clients must
    /// guess the life, or learn it from a 401).
    pub bnb_token_exp: bool,
    /// BNB mode: the QR image as an array of bytes instead of base64 text.
    pub bnb_image_as_bytes: bool,
    /// BNB mode: the next N QR calls answer 401 whatever their token.
    pub bnb_unauthorized_next: u32,
    /// BNB mode: the next N QR calls are refused in the body (HTTP 200,
    /// `success: false`).
    pub bnb_refuse_next: u32,
}

impl Default for BankKnobs {
    fn default() -> Self {
        Self {
            faults: Faults::default(),
            rate_limit_per_sec: None,
            default_script: default_script(),
            bnb_token_ttl: bnb::DEFAULT_TOKEN_TTL,
            bnb_token_exp: true,
            bnb_image_as_bytes: false,
            bnb_unauthorized_next: 0,
            bnb_refuse_next: 0,
        }
    }
}

impl BankKnobs {
    fn validate(&self) -> Result<(), String> {
        self.faults.validate()?;
        if self.default_script.is_empty() {
            return Err("default_script: needs at least one status".to_owned());
        }
        if self.bnb_token_ttl.is_zero() {
            return Err("bnb_token_ttl_ms: must be at least 1".to_owned());
        }
        if self.rate_limit_per_sec == Some(0) {
            return Err("rate_limit_per_sec: must be at least 1, or null for no limit".to_owned());
        }
        Ok(())
    }
}

/// A QR the bank knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Qr {
    pub qr_id: String,
    pub amount: String,
    pub currency: String,
    pub gloss: String,
    pub single_use: bool,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The statuses it goes through, one per status read.
    pub script: Vec<QrStatus>,
    /// Status reads so far (the next read answers `script[reads]`, or the last step).
    pub reads: u64,
    /// The bank's receipt of the payment, answered with a `completed` status.
    pub voucher_id: String,
    /// Created through the BNB mode (its id is a number).
    pub bnb: bool,
}

impl Qr {
    /// The status the next read would answer at `now`: the script's step, or
    /// `expired` once past `expires_at` unless the script already ended the QR.
    fn status_at(&self, step: u64, now: DateTime<Utc>) -> QrStatus {
        let last = self.script.len().saturating_sub(1);
        let status = self
            .script
            .get((step as usize).min(last))
            .copied()
            .unwrap_or(QrStatus::Pending);
        if now >= self.expires_at && !status.is_final() {
            QrStatus::Expired
        } else {
            status
        }
    }
}

/// What cancelling a QR found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// Cancelled now, or before; or expired, which ends it as well.
    Ended(QrStatus),
    /// The QR is paid: nothing to cancel.
    AlreadyPaid,
    /// No such QR.
    Unknown,
}

/// The bank's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankStats {
    /// Requests to `/bank`, answered or not.
    pub requests: u64,
    /// QRs created.
    pub creations: u64,
    /// Status reads answered, over every QR.
    pub status_reads: u64,
    /// QRs cancelled by a cancel request (not counting ones refused or ended already).
    pub cancellations: u64,
    /// BNB mode: tokens issued.
    pub tokens_issued: u64,
    /// BNB mode: QR calls answered 401.
    pub unauthorized: u64,
    /// BNB mode: QR calls refused in the body by `bnb_refuse_next`.
    pub refused: u64,
    /// Requests refused with 429 by the rate limit.
    pub rate_limited: u64,
    /// Requests answered with a server error by a knob.
    pub errors: u64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    count: u32,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    creations: AtomicU64,
    status_reads: AtomicU64,
    cancellations: AtomicU64,
    tokens: AtomicU64,
    unauthorized: AtomicU64,
    refused: AtomicU64,
    bnb_ids: AtomicU64,
    rate_limited: AtomicU64,
    errors: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    qr_ttl: Duration,
    knobs: Mutex<BankKnobs>,
    qrs: Mutex<HashMap<String, Qr>>,
    window: Mutex<Window>,
    counters: Counters,
    /// BNB mode: the `accountId` and `authorizationId` its token route accepts.
    bnb_credentials: (Secret, Secret),
    /// BNB mode: tokens issued and when each expires.
    tokens: Mutex<HashMap<String, Instant>>,
}

/// The bank's handle: QRs, scripts, knobs and counters at run time. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BankControl {
    inner: Arc<Inner>,
}

impl BankControl {
    pub(crate) fn new(config: BankConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                qr_ttl: config.qr_ttl,
                knobs: Mutex::new(config.knobs),
                qrs: Mutex::new(HashMap::new()),
                window: Mutex::new(Window {
                    started: Instant::now(),
                    count: 0,
                }),
                counters: Counters::default(),
                bnb_credentials: (config.bnb_account_id, config.bnb_authorization_id),
                tokens: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The knobs now.
    pub fn knobs(&self) -> BankKnobs {
        lock(&self.inner.knobs).clone()
    }

    /// Replaces every knob.
    pub fn set_knobs(&self, knobs: BankKnobs) {
        *lock(&self.inner.knobs) = knobs;
    }

    /// Changes some knobs.
    pub fn update_knobs(&self, change: impl FnOnce(&mut BankKnobs)) {
        change(&mut lock(&self.inner.knobs));
    }

    /// Refuses with 429 the requests over `per_sec` in one second (`None`: no limit).
    pub fn set_rate_limit(&self, per_sec: Option<u32>) {
        self.update_knobs(|k| k.rate_limit_per_sec = per_sec.filter(|n| *n > 0));
    }

    /// The script of QRs created from now on whose gloss names none.
    pub fn set_default_script(&self, script: Vec<QrStatus>) {
        if !script.is_empty() {
            self.update_knobs(|k| k.default_script = script);
        }
    }

    /// Gives QR `qr_id` a new script, from its first step. False for an unknown QR.
    pub fn set_script(&self, qr_id: &str, script: Vec<QrStatus>) -> bool {
        if script.is_empty() {
            return false;
        }
        match lock(&self.inner.qrs).get_mut(qr_id) {
            Some(qr) => {
                qr.script = script;
                qr.reads = 0;
                true
            }
            None => false,
        }
    }

    /// Pays QR `qr_id`: its next read answers `completed` (with its voucher),
    /// and so does every read after. False for an unknown QR.
    pub fn pay(&self, qr_id: &str) -> bool {
        self.set_script(qr_id, vec![QrStatus::Completed])
    }

    /// Cancels QR `qr_id` unless the status its next read would answer is
    /// final: `completed` refuses, `cancelled` or `expired` stay as they are.
    pub fn cancel(&self, qr_id: &str) -> Cancelled {
        let now = Utc::now();
        let mut qrs = lock(&self.inner.qrs);
        let Some(qr) = qrs.get_mut(qr_id) else {
            return Cancelled::Unknown;
        };
        match qr.status_at(qr.reads, now) {
            QrStatus::Completed => Cancelled::AlreadyPaid,
            end @ (QrStatus::Cancelled | QrStatus::Expired) => Cancelled::Ended(end),
            _ => {
                qr.script = vec![QrStatus::Cancelled];
                qr.reads = 0;
                drop(qrs);
                self.inner
                    .counters
                    .cancellations
                    .fetch_add(1, Ordering::SeqCst);
                Cancelled::Ended(QrStatus::Cancelled)
            }
        }
    }

    /// The QR `qr_id`, if the bank has it.
    pub fn qr(&self, qr_id: &str) -> Option<Qr> {
        lock(&self.inner.qrs).get(qr_id).cloned()
    }

    /// Every QR, oldest first.
    pub fn qrs(&self) -> Vec<Qr> {
        let mut all: Vec<Qr> = lock(&self.inner.qrs).values().cloned().collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.qr_id.cmp(&b.qr_id)));
        all
    }

    /// Status reads of QR `qr_id` so far (0 for an unknown QR).
    pub fn status_reads(&self, qr_id: &str) -> u64 {
        self.qr(qr_id).map_or(0, |qr| qr.reads)
    }

    /// The counters now.
    pub fn stats(&self) -> BankStats {
        let c = &self.inner.counters;
        BankStats {
            requests: c.requests.load(Ordering::SeqCst),
            creations: c.creations.load(Ordering::SeqCst),
            status_reads: c.status_reads.load(Ordering::SeqCst),
            cancellations: c.cancellations.load(Ordering::SeqCst),
            tokens_issued: c.tokens.load(Ordering::SeqCst),
            unauthorized: c.unauthorized.load(Ordering::SeqCst),
            refused: c.refused.load(Ordering::SeqCst),
            rate_limited: c.rate_limited.load(Ordering::SeqCst),
            errors: c.errors.load(Ordering::SeqCst),
        }
    }

    /// Zeroes the counters (QRs and their read counts stay).
    pub fn reset_stats(&self) {
        let c = &self.inner.counters;
        for n in [
            &c.requests,
            &c.creations,
            &c.status_reads,
            &c.cancellations,
            &c.tokens,
            &c.unauthorized,
            &c.refused,
            &c.rate_limited,
            &c.errors,
        ] {
            n.store(0, Ordering::SeqCst);
        }
    }

    /// Counts a request in the current one-second window; false when it is over `limit`.
    fn within_rate_limit(&self, limit: Option<u32>) -> bool {
        let mut w = lock(&self.inner.window);
        if w.started.elapsed() >= Duration::from_secs(1) {
            w.started = Instant::now();
            w.count = 0;
        }
        w.count = w.count.saturating_add(1);
        limit.is_none_or(|limit| w.count <= limit)
    }
}

fault_setters!(BankControl);

/// `/bank/...`
pub fn router() -> Router<SimState> {
    Router::new()
        .route("/bank/qr", post(create_qr))
        .route("/bank/qr/{qr_id}/status", get(qr_status))
        .route("/bank/qr/{qr_id}/cancel", post(cancel_qr))
        .merge(bnb::router())
}

/// `/_sim/bank/...`: stats, knobs, QRs and their scripts.
pub fn control_router() -> Router<SimState> {
    Router::new()
        .route("/_sim/bank/stats", get(get_stats))
        .route("/_sim/bank/stats/reset", post(reset_stats))
        .route("/_sim/bank/knobs", get(get_knobs).post(post_knobs))
        .route("/_sim/bank/qr/{qr_id}", get(get_qr))
        .route("/_sim/bank/qr/{qr_id}/script", post(post_script))
        .route("/_sim/bank/qr/{qr_id}/pay", post(post_pay))
}

fn bank_error(status: StatusCode, error: &str, message: &str) -> Response {
    (status, Json(json!({"error": error, "message": message}))).into_response()
}

/// Counting, the rate limit, latency, then the fault dice.
async fn gate(state: &SimState) -> Option<Response> {
    let bank = state.bank();
    let c = &bank.inner.counters;
    c.requests.fetch_add(1, Ordering::SeqCst);
    let limit = lock(&bank.inner.knobs).rate_limit_per_sec;
    if !bank.within_rate_limit(limit) {
        c.rate_limited.fetch_add(1, Ordering::SeqCst);
        let mut response = bank_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests, retry in a second",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return Some(response);
    }
    let (latency, roll) = {
        let mut k = lock(&bank.inner.knobs);
        (k.faults.latency, faults::roll(&mut k.faults, state.rng()))
    };
    let shutdown = state.shutdown();
    let stopping = || {
        bank_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the simulator is stopping",
        )
    };
    if !faults::sleep(latency, shutdown).await {
        return Some(stopping());
    }
    match roll {
        Roll::Answer => None,
        Roll::Hang => {
            tracing::debug!("bank request hangs");
            faults::sleep(faults::HANG_FOR, shutdown).await;
            Some(stopping())
        }
        Roll::Fail => {
            c.errors.fetch_add(1, Ordering::SeqCst);
            tracing::debug!("bank request fails by a knob");
            Some(bank_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error (simulated)",
            ))
        }
    }
}

/// `"125.50"`: digits, optionally a point and one or two decimals, above zero.
fn valid_amount(s: &str) -> bool {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    let ok_shape = !whole.is_empty()
        && whole.len() <= 12
        && digits(whole)
        && digits(frac)
        && frac.len() <= 2
        && (s.contains('.') != frac.is_empty());
    ok_shape && s.chars().any(|c| c.is_ascii_digit() && c != '0')
}

fn field_error(field: &str, message: &str) -> Response {
    crate::error_body(StatusCode::BAD_REQUEST, field, message)
}

/// The checked fields of a create request.
#[derive(Debug)]
struct CreateRequest {
    amount: String,
    currency: String,
    gloss: String,
    expires_at: DateTime<Utc>,
    single_use: bool,
}

/// A bad field and the rule it breaks: a 400.
#[derive(Debug)]
struct FieldError(&'static str, String);

impl FieldError {
    fn new(field: &'static str, message: &str) -> Self {
        Self(field, message.to_owned())
    }

    fn into_response(self) -> Response {
        field_error(self.0, &self.1)
    }
}

/// The checked fields of a create request, or the field at fault.
fn parse_create(
    body: &[u8],
    default_ttl: Duration,
    now: DateTime<Utc>,
) -> Result<CreateRequest, FieldError> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| FieldError("body", format!("not JSON: {e}")))?;
    let Some(body) = body.as_object() else {
        return Err(FieldError::new("body", "must be a JSON object"));
    };
    let amount = match body.get("amount") {
        Some(Value::String(s)) if valid_amount(s.trim()) => s.trim().to_owned(),
        Some(Value::Number(_)) => {
            return Err(FieldError::new(
                "amount",
                "must be a decimal string such as \"125.50\", not a number",
            ));
        }
        Some(_) => {
            return Err(FieldError::new(
                "amount",
                "must be a positive decimal string with at most two decimals, such as \"125.50\"",
            ));
        }
        None => return Err(FieldError::new("amount", "is required")),
    };
    let currency = match body.get("currency").and_then(Value::as_str) {
        Some(c @ ("BOB" | "USD")) => c.to_owned(),
        _ => return Err(FieldError::new("currency", "must be BOB or USD")),
    };
    let gloss = match body.get("gloss") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(g)) if g.chars().count() <= 200 => g.clone(),
        Some(_) => {
            return Err(FieldError::new(
                "gloss",
                "must be a string of at most 200 characters",
            ));
        }
    };
    let expires_at = match body.get("expires_at") {
        None | Some(Value::Null) => {
            now + chrono::Duration::from_std(default_ttl).unwrap_or(chrono::Duration::minutes(15))
        }
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) if t.with_timezone(&Utc) > now => t.with_timezone(&Utc),
            Ok(_) => return Err(FieldError::new("expires_at", "must be in the future")),
            Err(_) => {
                return Err(FieldError::new(
                    "expires_at",
                    "must be an RFC 3339 time such as 2030-01-31T23:59:00Z",
                ));
            }
        },
        Some(_) => return Err(FieldError::new("expires_at", "must be an RFC 3339 string")),
    };
    let single_use = match body.get("single_use") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(FieldError::new("single_use", "must be true or false")),
    };
    Ok(CreateRequest {
        amount,
        currency,
        gloss,
        expires_at,
        single_use,
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn create_qr(State(state): State<SimState>, body: Bytes) -> Response {
    if let Some(response) = gate(&state).await {
        return response;
    }
    let bank = state.bank();
    let now = Utc::now();
    let CreateRequest {
        amount,
        currency,
        gloss,
        expires_at,
        single_use,
    } = match parse_create(&body, bank.inner.qr_ttl, now) {
        Ok(fields) => fields,
        Err(e) => return e.into_response(),
    };
    let script = match script_from_gloss(&gloss) {
        Some(Ok(script)) => script,
        Some(Err(e)) => return field_error("gloss", &format!("script: {e}")),
        None => bank.knobs().default_script,
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let qr = Qr {
        qr_id: format!("qr-{id}"),
        voucher_id: format!("vch-{}", &id[..12]),
        bnb: false,
        amount,
        currency,
        gloss,
        single_use,
        expires_at,
        created_at: now,
        script,
        reads: 0,
    };
    let status = qr.status_at(0, now);
    let response = json!({
        "qr_id": qr.qr_id,
        "status": status,
        "amount": qr.amount,
        "currency": qr.currency,
        "gloss": qr.gloss,
        "single_use": qr.single_use,
        "image_png_base64": PLACEHOLDER_PNG_BASE64,
        "expires_at": rfc3339(qr.expires_at),
    });
    tracing::debug!(qr.id = %qr.qr_id, script = ?qr.script, "bank QR created");
    lock(&bank.inner.qrs).insert(qr.qr_id.clone(), qr);
    bank.inner.counters.creations.fetch_add(1, Ordering::SeqCst);
    (StatusCode::CREATED, Json(response)).into_response()
}

async fn qr_status(State(state): State<SimState>, Path(qr_id): Path<String>) -> Response {
    if let Some(response) = gate(&state).await {
        return response;
    }
    let bank = state.bank();
    let now = Utc::now();
    let (status, voucher_id) = {
        let mut qrs = lock(&bank.inner.qrs);
        let Some(qr) = qrs.get_mut(&qr_id) else {
            drop(qrs);
            return bank_error(StatusCode::NOT_FOUND, "not_found", "no such QR");
        };
        let status = qr.status_at(qr.reads, now);
        qr.reads += 1;
        (status, qr.voucher_id.clone())
    };
    bank.inner
        .counters
        .status_reads
        .fetch_add(1, Ordering::SeqCst);
    let mut answer = json!({"qr_id": qr_id, "status": status, "checked_at": rfc3339(now)});
    if status == QrStatus::Completed {
        answer["voucher_id"] = json!(voucher_id);
    }
    Json(answer).into_response()
}

/// 200 with the QR's final status; 409 `already_paid` for a paid QR; 404.
async fn cancel_qr(State(state): State<SimState>, Path(qr_id): Path<String>) -> Response {
    if let Some(response) = gate(&state).await {
        return response;
    }
    match state.bank().cancel(&qr_id) {
        Cancelled::Ended(status) => Json(json!({"qr_id": qr_id, "status": status})).into_response(),
        Cancelled::AlreadyPaid => bank_error(
            StatusCode::CONFLICT,
            "already_paid",
            "the QR is paid already and cannot be cancelled",
        ),
        Cancelled::Unknown => bank_error(StatusCode::NOT_FOUND, "not_found", "no such QR"),
    }
}

async fn get_stats(State(state): State<SimState>) -> Json<BankStats> {
    Json(state.bank().stats())
}

async fn reset_stats(State(state): State<SimState>) -> Json<BankStats> {
    state.bank().reset_stats();
    Json(state.bank().stats())
}

async fn get_knobs(State(state): State<SimState>) -> Json<BankKnobs> {
    Json(state.bank().knobs())
}

async fn post_knobs(State(state): State<SimState>, body: Bytes) -> Response {
    let bank = state.bank();
    let result = serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|patch| faults::patch(&bank.knobs(), patch))
        .and_then(|knobs: BankKnobs| knobs.validate().map(|()| knobs));
    match result {
        Ok(knobs) => {
            tracing::info!(?knobs, "bank knobs changed");
            bank.set_knobs(knobs.clone());
            Json(knobs).into_response()
        }
        Err(message) => crate::bad_knobs(message),
    }
}

async fn get_qr(State(state): State<SimState>, Path(qr_id): Path<String>) -> Response {
    match state.bank().qr(&qr_id) {
        Some(qr) => Json(qr).into_response(),
        None => bank_error(StatusCode::NOT_FOUND, "not_found", "no such QR"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptRequest {
    script: Vec<QrStatus>,
}

async fn post_script(
    State(state): State<SimState>,
    Path(qr_id): Path<String>,
    body: Bytes,
) -> Response {
    let request: ScriptRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return crate::bad_knobs(format!("script: {e}")),
    };
    if request.script.is_empty() {
        return crate::bad_knobs("script: needs at least one status".to_owned());
    }
    if state.bank().set_script(&qr_id, request.script) {
        get_qr(State(state), Path(qr_id)).await
    } else {
        bank_error(StatusCode::NOT_FOUND, "not_found", "no such QR")
    }
}

async fn post_pay(State(state): State<SimState>, Path(qr_id): Path<String>) -> Response {
    if state.bank().pay(&qr_id) {
        get_qr(State(state), Path(qr_id)).await
    } else {
        bank_error(StatusCode::NOT_FOUND, "not_found", "no such QR")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_positive_decimals_with_at_most_two_places() {
        for good in ["125.50", "1", "0.01", "10.5", "999999"] {
            assert!(valid_amount(good), "{good}");
        }
        for bad in [
            "", "0", "0.00", "-1", "1.", ".5", "1.234", "12,50", "1e3", "abc",
        ] {
            assert!(!valid_amount(bad), "{bad}");
        }
    }

    #[test]
    fn a_gloss_can_carry_a_script() {
        let script = script_from_gloss("Pago 42 script:pending,processing,completed otros")
            .expect("a script")
            .expect("valid");
        assert_eq!(
            script,
            [QrStatus::Pending, QrStatus::Processing, QrStatus::Completed]
        );
        assert!(script_from_gloss("Pago sin guion").is_none());
        assert!(
            script_from_gloss("script:pending,paid")
                .expect("a script")
                .is_err()
        );
    }

    #[test]
    fn a_script_advances_per_read_and_stays_on_its_last_step() {
        let now = Utc::now();
        let qr = Qr {
            qr_id: "q".into(),
            amount: "1".into(),
            currency: "BOB".into(),
            gloss: String::new(),
            single_use: true,
            expires_at: now + chrono::Duration::minutes(5),
            created_at: now,
            script: default_script(),
            reads: 0,
            voucher_id: "vch-1".into(),
            bnb: false,
        };
        let steps: Vec<QrStatus> = (0..5).map(|i| qr.status_at(i, now)).collect();
        use QrStatus::*;
        assert_eq!(steps, [Pending, Pending, Completed, Completed, Completed]);
        let later = now + chrono::Duration::minutes(6);
        assert_eq!(qr.status_at(0, later), Expired);
        assert_eq!(qr.status_at(2, later), Completed);
    }
}
