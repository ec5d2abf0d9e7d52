//! Payment QRs: created at the bank, stored, and checked in the background by
//! the payment-scheduler until paid, cancelled or expired.
//!
//! A create asks the bank for the QR first (nothing is stored if the bank
//! refuses or cannot be reached: 422 or 503), then commits the payment (with
//! its movement and `paid_at` when the bank reports it paid at creation) and
//! enqueues its first check, due at once (`payment:ID:check:1`, unique until
//! settled); the status delays apply from the second check on. A failed enqueue is logged, not answered: the payment is stored and
//! the scheduler's reconciler enqueues its check from `next_check_at`.
//! Amounts are decimal strings ("125.50"), never JSON numbers, stored as whole
//! cents.
//!
//! Around a payment: its QR image as PNG (`qr.png`); a cancel (at the bank
//! first, then the row, whose checks end); the bank's notification that a QR
//! was paid, which only asks for a check now (docs/design.md, "Notification,
//! then check"); and an operator's resume or resolve-by-hand of a payment
//! flagged for an operator, audited.

use ::payments::{BankError, CreateError, CreateQr};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use jobs::v1::PaymentStatusCheck;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::PastError;
use store::payments::{
    self, ByHand, CheckOutcome, CheckRecord, Currency, Ending, Movement, Payment, PaymentStatus,
};
use tracing::{Instrument, info, warn};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::AppState;
use crate::auth::{Caller, ClientAddr, OperatorCaller, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiBytes, ApiJson};
use crate::params::ApiPath;
use crate::routes::RerunBy;

/// Longest description, in characters (the bank's gloss limit).
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Longest bank QR id accepted in a path.
pub const MAX_QR_ID_LEN: usize = 200;

/// Longest reason of a resolve by hand, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// How long a client may keep a QR image: it never changes.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// `POST /api/payments/qr`, `GET /api/payments/{qr_id}`,
/// `GET /api/payments/{qr_id}/qr.png`, `POST /api/payments/{qr_id}/cancel`,
/// `POST /api/payments/notifications`, `POST /api/payments/{qr_id}/resume`,
/// `POST /api/payments/{qr_id}/resolve`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments/qr", post(create))
        .route("/api/payments/notifications", post(notify))
        .route("/api/payments/{qr_id}", routing::get(get))
        .route("/api/payments/{qr_id}/qr.png", routing::get(qr_png))
        .route("/api/payments/{qr_id}/cancel", post(cancel))
        .route("/api/payments/{qr_id}/resume", post(resume))
        .route("/api/payments/{qr_id}/resolve", post(resolve))
}

/// A payment QR to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentQr {
    /// The amount as a decimal string with at most two decimals, above zero
    /// (`"125.50"`); a JSON number, a sign or an exponent is refused (422).
    #[schema(
        value_type = String,
        example = "125.50",
        pattern = r"^(0*[1-9][0-9]{0,11}(\.[0-9]{1,2})?|0+\.([1-9][0-9]?|0[1-9]))$"
    )]
    pub amount: Value,
    /// `BOB` or `USD`.
    #[schema(value_type = PaymentCurrency, example = "BOB")]
    pub currency: String,
    /// Shown to the payer as the QR's gloss: at most 200 characters, no control
    /// characters.
    #[serde(default)]
    #[schema(
        example = "Pedido 42",
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    /// When the QR stops being payable (RFC 3339, in the future); the bank's
    /// default life (15 minutes in the simulator) when absent.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The currencies a payment QR can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum PaymentCurrency {
    #[serde(rename = "BOB")]
    Bob,
    #[serde(rename = "USD")]
    Usd,
}

impl From<Currency> for PaymentCurrency {
    fn from(c: Currency) -> Self {
        match c {
            Currency::Bob => Self::Bob,
            Currency::Usd => Self::Usd,
        }
    }
}

/// The schema of a payment's status: store's [`PaymentStatus`] by the names it
/// serializes to (`PaymentStatus::ALL`), so the API keeps no copy of the list.
#[derive(Debug)]
pub struct PaymentQrStatus;

impl utoipa::PartialSchema for PaymentQrStatus {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Where a payment stands at the bank."))
            .enum_values(Some(PaymentStatus::ALL.map(PaymentStatus::as_str)))
            .into()
    }
}

impl utoipa::ToSchema for PaymentQrStatus {}

/// One check of a payment at the bank.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentCheckResponse {
    /// 1-based.
    pub check_number: i32,
    /// `ok`: the bank answered `status`; `failed`: every attempt failed (`error`).
    #[schema(example = "ok")]
    pub outcome: String,
    #[schema(value_type = Option<PaymentQrStatus>)]
    pub status: Option<PaymentStatus>,
    /// Whether this check changed the payment's status.
    pub changed: bool,
    pub error: Option<String>,
    /// When the check was due.
    pub due_at: Option<DateTime<Utc>>,
    pub checked_at: DateTime<Utc>,
}

impl From<CheckRecord> for PaymentCheckResponse {
    fn from(c: CheckRecord) -> Self {
        Self {
            check_number: c.check_number,
            outcome: match c.outcome {
                CheckOutcome::Ok => "ok",
                CheckOutcome::Failed => "failed",
            }
            .to_owned(),
            status: c.status,
            changed: c.changed,
            error: c.error,
            due_at: c.due_at,
            checked_at: c.checked_at,
        }
    }
}

/// A movement booked to the shop's account for a paid payment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MovementResponse {
    pub id: i64,
    #[schema(example = "qr_payment")]
    pub kind: String,
    #[schema(example = "125.50")]
    pub amount: String,
    pub currency: PaymentCurrency,
    pub description: String,
    pub booked_at: DateTime<Utc>,
    /// The bank's receipt of the payment (BNB's `voucherId`); null when the
    /// bank gave none.
    #[schema(example = "100234567")]
    pub voucher_id: Option<String>,
}

impl From<Movement> for MovementResponse {
    fn from(m: Movement) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            amount: payments::format_amount(m.amount_cents),
            currency: m.currency.into(),
            description: m.description,
            booked_at: m.booked_at,
            voucher_id: m.voucher_id,
        }
    }
}

/// A payment QR, where it stands and how it was checked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentResponse {
    #[schema(example = 1)]
    pub id: i64,
    /// The bank's id of the QR; the payment's address: `/api/payments/{qr_id}`.
    #[schema(example = "qr-5f0c2a")]
    pub qr_id: String,
    /// Exact, two decimals.
    #[schema(example = "125.50")]
    pub amount: String,
    pub currency: PaymentCurrency,
    pub description: String,
    #[schema(example = "pending", value_type = PaymentQrStatus)]
    pub status: PaymentStatus,
    /// The QR image as a data URL (`data:image/png;base64,...`).
    pub qr_image: String,
    pub expires_at: DateTime<Utc>,
    /// Checks made at the bank so far.
    pub checks_made: i32,
    /// When the next check is due; null once checks ended.
    pub next_check_at: Option<DateTime<Utc>>,
    /// Checks stopped without a final status (the check limit): an operator
    /// should look; `operator_reason` says why.
    pub needs_operator: bool,
    pub operator_reason: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Earlier flags for an operator, oldest first: resumed, or resolved by hand.
    pub operator_history: Vec<OperatorFlagResponse>,
    /// The checks made, first first.
    pub checks: Vec<PaymentCheckResponse>,
    /// The movements booked: one once paid, none before.
    pub movements: Vec<MovementResponse>,
}

impl PaymentResponse {
    fn new(p: Payment, checks: Vec<CheckRecord>, movements: Vec<Movement>) -> Self {
        Self {
            id: p.id,
            qr_id: p.qr_id,
            amount: payments::format_amount(p.amount_cents),
            currency: p.currency.into(),
            description: p.description,
            status: p.status,
            qr_image: format!("data:image/png;base64,{}", p.qr_image_base64),
            expires_at: p.expires_at,
            checks_made: p.checks_made,
            next_check_at: p.next_check_at,
            needs_operator: p.needs_operator,
            operator_reason: p.operator_reason,
            paid_at: p.paid_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            operator_history: p.operator_history.0.into_iter().map(Into::into).collect(),
            checks: checks.into_iter().map(Into::into).collect(),
            movements: movements.into_iter().map(Into::into).collect(),
        }
    }
}

/// A flag for an operator that has ended: why the checks had stopped, and
/// whether an operator resumed them or resolved the payment by hand.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OperatorFlagResponse {
    /// Why its checks had stopped.
    pub flag_reason: Option<String>,
    /// When it was resumed or resolved.
    pub ended_at: DateTime<Utc>,
    /// The status an operator gave it by hand; null when resumed.
    #[schema(value_type = Option<PaymentQrStatus>)]
    pub resolved_as: Option<String>,
    /// The operator's reason, when resolved by hand.
    pub resolution_reason: Option<String>,
    /// Who resolved it (`ops-alice (rsq_ab12cd34)`), when resolved by hand.
    pub resolved_by: Option<String>,
}

impl From<PastError> for OperatorFlagResponse {
    fn from(past: PastError) -> Self {
        let (resolved_as, resolution_reason, resolved_by) = match past.resolution {
            Some(r) => (Some(r.status), Some(r.reason), Some(r.by)),
            None => (None, None, None),
        };
        Self {
            flag_reason: past.error,
            ended_at: past.reopened_at,
            resolved_as,
            resolution_reason,
            resolved_by,
        }
    }
}

/// The checked fields of a create request.
#[derive(Debug, PartialEq, Eq)]
struct Valid {
    amount_cents: i64,
    currency: Currency,
    description: String,
    expires_at: Option<DateTime<Utc>>,
}

/// Checks every field; the first broken rule is the error, naming its field.
fn validate(input: CreatePaymentQr, now: DateTime<Utc>) -> Result<Valid, ApiError> {
    let amount_cents = match &input.amount {
        Value::String(s) => {
            payments::parse_amount(s).map_err(|rule| ApiError::validation("amount", rule))?
        }
        Value::Number(_) => {
            return Err(ApiError::validation(
                "amount",
                "must be a decimal string such as \"125.50\", not a JSON number",
            ));
        }
        _ => {
            return Err(ApiError::validation(
                "amount",
                "must be a decimal string such as \"125.50\"",
            ));
        }
    };
    let currency = input
        .currency
        .parse::<Currency>()
        .map_err(|rule| ApiError::validation("currency", rule))?;
    let description = input.description.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::validation(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if description.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "description",
            "must not contain control characters",
        ));
    }
    if let Some(at) = input.expires_at
        && at <= now
    {
        return Err(ApiError::validation("expires_at", "must be in the future"));
    }
    Ok(Valid {
        amount_cents,
        currency,
        description,
        expires_at: input.expires_at,
    })
}

/// Creates a payment QR at the bank, stores it and schedules its first check.
#[utoipa::path(
    post,
    path = "/api/payments/qr",
    operation_id = "create_payment_qr",
    tag = "payments",
    request_body = CreatePaymentQr,
    responses(
        (status = 201, description = "Created at the bank and stored with the bank's status: `pending` with its first check enqueued to run at once (also when the queue is down: the check is enqueued later), or `completed` with its movement booked", body = PaymentResponse),
        (status = 400, description = "Body is not the JSON expected (`invalid_json`)", body = ErrorBody),
        (status = 413, description = "The body is over API_BODY_LIMIT_BYTES (`payload_too_large`)", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (an amount that is a JSON number, negative, zero or with more than two decimals; a currency other than BOB or USD; ...); `field` names it (`validation_failed`)", body = ErrorBody),
        (status = 503, description = "`unavailable`: the bank could not be reached or refused to answer; nothing was stored. `timeout`: the request outlasted API_REQUEST_TIMEOUT", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(input): ApiJson<CreatePaymentQr>,
) -> Result<Response, ApiError> {
    let input = validate(input, Utc::now())?;
    // In a task of its own, as persons and companies are stored: a client
    // hanging up must not drop the work between the bank's QR and our row.
    let payment =
        tokio::spawn(create_payment(state.clone(), input).instrument(tracing::Span::current()))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("payment task failed: {e}")))??;
    let location = format!("/api/payments/{}", payment.qr_id);
    // Paid at creation: its movement was booked with it.
    let movements = if payment.status == PaymentStatus::Completed {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        payments::movements(&mut conn, payment.id).await?
    } else {
        Vec::new()
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(PaymentResponse::new(payment, Vec::new(), movements)),
    )
        .into_response())
}

fn bank_error(e: BankError) -> ApiError {
    match e {
        BankError::Rejected { field, message } => {
            let field = match field.as_str() {
                "gloss" => "description",
                "amount" | "currency" | "expires_at" => field.as_str(),
                _ => "body",
            };
            ApiError::validation(field, format!("refused by the bank: {message}"))
        }
        other => ApiError::Unavailable {
            what: "the bank".into(),
            source: other.into(),
        },
    }
}

/// Asks the bank for the QR, stores the payment (booked in the same
/// transaction when the bank reports it paid already), then enqueues its first
/// check, due at once (`payments::create_payment`).
async fn create_payment(state: AppState, input: Valid) -> Result<Payment, ApiError> {
    let request = CreateQr {
        amount_cents: input.amount_cents,
        currency: input.currency,
        description: input.description,
        expires_at: input.expires_at,
    };
    let created = ::payments::create_payment(&state.pool, state.bank.as_ref(), &request)
        .await
        .map_err(|e| match e {
            CreateError::Bank(e) => bank_error(e),
            CreateError::Store(e) => ApiError::from(e),
        })?;
    let payment = created.payment;
    // The row is committed: from here on the request succeeds. The check's key
    // is unique until settled, so a lost enqueue is made good by the
    // reconciler with the same key, never doubled.
    let Some(job) = created.first_check else {
        return Ok(payment);
    };
    match state.enqueuer.enqueue(job).await {
        Ok(enqueued) => info!(
            payment.id = payment.id,
            payment.amount_cents = payment.amount_cents,
            payment.currency = payment.currency.as_str(),
            job.id = enqueued.id(),
            "payment QR created, first check enqueued"
        ),
        Err(e) => warn!(
            payment.id = payment.id,
            error = format!("{:#}", anyhow::Error::from(e)),
            "payment QR created, but enqueueing its first check failed; the reconciler will enqueue it"
        ),
    }
    Ok(payment)
}

/// A payment by the bank's QR id: status, checks, next check, movements.
#[utoipa::path(
    get,
    path = "/api/payments/{qr_id}",
    operation_id = "get_payment",
    tag = "payments",
    params(("qr_id" = String, Path, description = "The bank's QR id, as `POST /api/payments/qr` answered it", example = "qr-5f0c2a")),
    responses(
        (status = 200, description = "The payment, its status, the checks made and the movements booked", body = PaymentResponse),
        (status = 404, description = "No such payment (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(qr_id): ApiPath<String>,
) -> Result<Json<PaymentResponse>, ApiError> {
    let payment = payment_of(&state, &qr_id).await?;
    Ok(Json(full_response(&state, payment).await?))
}

/// The payment of the bank's QR `qr_id`, or a 404 naming it.
async fn payment_of(state: &AppState, qr_id: &str) -> Result<Payment, ApiError> {
    by_qr_id(&mut *state.conn().await?, qr_id).await
}

/// `payment` with its checks and movements.
async fn full_response(state: &AppState, payment: Payment) -> Result<PaymentResponse, ApiError> {
    let mut conn = state.conn().await?;
    let checks = payments::checks(&mut conn, payment.id).await?;
    let movements = payments::movements(&mut conn, payment.id).await?;
    Ok(PaymentResponse::new(payment, checks, movements))
}

/// The payment of the bank's QR `qr_id`, or a 404 naming it.
async fn by_qr_id(conn: &mut store::PgConnection, qr_id: &str) -> Result<Payment, ApiError> {
    let not_found = || ApiError::NotFound(format!("no payment with qr_id {qr_id:?}"));
    if qr_id.len() > MAX_QR_ID_LEN || qr_id.contains('\0') {
        return Err(not_found());
    }
    payments::get_by_qr_id(conn, qr_id)
        .await?
        .ok_or_else(not_found)
}

/// What resuming the checks of a flagged payment did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResumeResponse {
    #[schema(example = 1)]
    pub payment_id: i64,
    #[schema(example = "qr-5f0c2a")]
    pub qr_id: String,
    /// `dead_letter_retried`: the payment's dead-lettered check was retried,
    /// and the payment-scheduler reopens the payment as it runs it;
    /// `job_enqueued`: the payment was reopened here and its next check
    /// enqueued, due now.
    #[schema(example = "job_enqueued")]
    pub resumed_by: RerunBy,
    /// The job that checks the payment next; null when its enqueue failed (the
    /// payment is due now, so the scheduler's reconciler enqueues it).
    pub job_id: Option<String>,
}

/// Checks a payment flagged for an operator again: unflagged, its reason kept
/// in `operator_history`, allowed `PAYMENT_MAX_CHECKS` more checks, the next
/// one now. When a check of it is still in the dead-letter stream, that dead
/// letter is retried instead (the scheduler reopens the payment as it runs it),
/// so no second check runs beside it. 404 when there is no such payment, 409
/// when it is not flagged (or has a final status).
/// Audited as `payment.resume` of `payment/ID`, for `who`.
pub async fn resume_checks(
    state: &AppState,
    who: &Principal,
    payment_id: i64,
) -> Result<ResumeResponse, ApiError> {
    let target = format!("payment/{payment_id}");
    crate::actions::audited(
        state,
        who,
        ops::action::PAYMENT_RESUME,
        &target,
        Box::pin(resume_unaudited(state, payment_id)),
    )
    .await
}

async fn resume_unaudited(state: &AppState, payment_id: i64) -> Result<ResumeResponse, ApiError> {
    let not_flagged = |p: &Payment| ApiError::Conflict {
        field: "qr_id".into(),
        message: format!(
            "payment {} is not flagged for an operator (it is {}, {} checks made)",
            p.qr_id, p.status, p.checks_made
        ),
    };
    let payment = {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        payments::get(&mut conn, payment_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no payment with id {payment_id}")))?
    };
    if !payment.needs_operator || payment.status.is_final() {
        return Err(not_flagged(&payment));
    }
    let reopen = async {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        let reopened = payments::reopen_flagged(&mut conn, payment_id).await?;
        Ok(reopened.as_ref().and_then(jobs::rows::next_check_job))
    };
    let rerun = super::rerun(
        state,
        |check: &PaymentStatusCheck| check.payment() == payment_id,
        reopen,
        // Reopened meanwhile by another operator or the scheduler.
        || not_flagged(&payment),
    )
    .await?;
    info!(
        payment.id = payment_id,
        resumed_by = ?rerun.by,
        job.id = rerun.job_id.as_deref().unwrap_or(""),
        "an operator resumed the checks of a flagged payment"
    );
    Ok(ResumeResponse {
        payment_id,
        qr_id: payment.qr_id,
        resumed_by: rerun.by,
        job_id: rerun.job_id,
    })
}

/// Resumes the checks of a payment flagged for an operator (the check limit
/// reached, or its checks failing): see [`resume_checks`].
#[utoipa::path(
    post,
    path = "/api/payments/{qr_id}/resume",
    operation_id = "resume_payment_checks",
    tag = "payments",
    params(("qr_id" = String, Path, description = "The bank's QR id, as `POST /api/payments/qr` answered it", example = "qr-5f0c2a")),
    responses(
        (status = 202, description = "Checking again: its dead-lettered check retried, or the payment reopened and its next check enqueued, due now", body = ResumeResponse),
        (status = 401, description = "No valid key (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The key's role is below `operator` (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such payment (`not_found`)", body = ErrorBody),
        (status = 409, description = "The payment is not flagged for an operator, or its status is final; `field` is `qr_id` (`conflict`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn resume(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(qr_id): ApiPath<String>,
) -> Result<(StatusCode, Json<ResumeResponse>), ApiError> {
    let payment = payment_of(&state, &qr_id).await?;
    let resumed = resume_checks(&state, &who, payment.id).await?;
    Ok((StatusCode::ACCEPTED, Json(resumed)))
}

/// A payment's QR image, as the bank made it, to show the payer.
#[utoipa::path(
    get,
    path = "/api/payments/{qr_id}/qr.png",
    operation_id = "get_payment_qr_png",
    tag = "payments",
    params(("qr_id" = String, Path, description = "The bank's QR id, as `POST /api/payments/qr` answered it", example = "qr-5f0c2a")),
    responses(
        (status = 200, description = "The QR image (PNG), as the bank made it; it never changes, so it may be cached for good (`Cache-Control: private, max-age=31536000, immutable`)", content(("image/png"))),
        (status = 404, description = "No such payment (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn qr_png(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(qr_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let payment = payment_of(&state, &qr_id).await?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(payment.qr_image_base64.trim())
        .map_err(|e| {
            ApiError::Internal(anyhow::anyhow!(
                "payment {} has a stored image that is not base64: {e}",
                payment.id
            ))
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        png,
    )
        .into_response())
}

/// Enqueues a check of the payment now, on the high lane, that takes the
/// payment's next check number (`jobs::rows::notified_check_job`); whether it
/// was enqueued or one was waiting already, and its id.
async fn check_now(state: &AppState, payment_id: i64) -> Result<(bool, String), ApiError> {
    let enqueued = state
        .enqueuer
        .enqueue(jobs::rows::notified_check_job(payment_id))
        .await
        .map_err(|e| ApiError::Unavailable {
            what: "the job queue".into(),
            source: anyhow::Error::from(e),
        })?;
    let fresh = !matches!(enqueued, queue_core::Enqueued::Duplicate { .. });
    Ok((fresh, enqueued.id().to_owned()))
}

fn final_conflict(p: &Payment) -> ApiError {
    ApiError::Conflict {
        field: "qr_id".into(),
        message: format!(
            "payment {} is {}: only a payment still checked can be cancelled",
            p.qr_id, p.status
        ),
    }
}

/// Cancels a payment QR: at the bank first (so it can no longer be paid), then
/// the payment, whose checks end (a check still queued finds it final). An
/// already cancelled payment is answered as it is. Audited as `payment.cancel`.
#[utoipa::path(
    post,
    path = "/api/payments/{qr_id}/cancel",
    operation_id = "cancel_payment",
    tag = "payments",
    params(("qr_id" = String, Path, description = "The bank's QR id, as `POST /api/payments/qr` answered it", example = "qr-5f0c2a")),
    responses(
        (status = 200, description = "Cancelled at the bank and here, its checks ended; or it was cancelled already (nothing done)", body = PaymentResponse),
        (status = 404, description = "No such payment (`not_found`)", body = ErrorBody),
        (status = 409, description = "`conflict`, `field` `qr_id`: the payment is completed or expired; or the bank refused because the QR was paid meanwhile, in which case a check runs now to book it", body = ErrorBody),
        (status = 503, description = "`unavailable`: the bank (or the audit log) could not be reached; nothing was cancelled. `timeout`: the request outlasted API_REQUEST_TIMEOUT", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(qr_id): ApiPath<String>,
) -> Result<Json<PaymentResponse>, ApiError> {
    let payment = payment_of(&state, &qr_id).await?;
    let payment = match payment.status {
        PaymentStatus::Cancelled => payment,
        s if s.is_final() => return Err(final_conflict(&payment)),
        _ => {
            let target = format!("payment/{}", payment.id);
            crate::actions::audited(
                &state,
                &who,
                ops::action::PAYMENT_CANCEL,
                &target,
                Box::pin(cancel_unaudited(&state, &who, payment)),
            )
            .await?
        }
    };
    Ok(Json(full_response(&state, payment).await?))
}

/// The 409 of a cancel the bank refused because the QR was paid before it
/// arrived; the payment is checked now, to book it rather than at its next
/// scheduled check.
async fn paid_meanwhile(state: &AppState, payment: &Payment) -> ApiError {
    let checking = if payment.next_check_at.is_none() {
        // Flagged: no check runs on it any more.
        "its checks have stopped, so an operator resumes them or resolves it by hand as completed"
    } else {
        match check_now(state, payment.id).await {
            Ok((_, job_id)) => {
                info!(
                    payment.id = payment.id,
                    job.id = job_id,
                    "the bank refused a cancel: the QR is paid; checking it now"
                );
                "it is being checked now and will be completed with its movement"
            }
            Err(e) => {
                warn!(payment.id = payment.id, error = %e, "the bank refused a cancel: the QR is paid; enqueueing a check failed, its scheduled check books it");
                "its next scheduled check will complete it with its movement"
            }
        }
    };
    ApiError::Conflict {
        field: "qr_id".into(),
        message: format!(
            "the bank refused to cancel {}: it was paid meanwhile; {checking}",
            payment.qr_id
        ),
    }
}

async fn cancel_unaudited(
    state: &AppState,
    who: &Principal,
    payment: Payment,
) -> Result<Payment, ApiError> {
    match state.bank.cancel_qr(&payment.qr_id).await {
        Ok(()) => {}
        Err(BankError::NotFound) => {
            return Err(ApiError::Conflict {
                field: "qr_id".into(),
                message: format!(
                    "the bank does not know QR {}; nothing was cancelled",
                    payment.qr_id
                ),
            });
        }
        Err(BankError::AlreadyPaid) => return Err(paid_meanwhile(state, &payment).await),
        Err(e) => {
            return Err(ApiError::Unavailable {
                what: "the bank".into(),
                source: e.into(),
            });
        }
    }
    let by_hand = ByHand {
        status: PaymentStatus::Cancelled,
        reason: "cancelled at the bank",
        by: &who.actor(),
    };
    let mut conn = state.conn().await?;
    match payments::end_by_hand(&mut conn, payment.id, &by_hand, Ending::AnyLive).await? {
        Some(cancelled) => {
            info!(
                payment.id = payment.id,
                "payment cancelled at the bank and here"
            );
            Ok(cancelled)
        }
        // A check or another cancel got there first.
        None => {
            let now = by_qr_id(&mut conn, &payment.qr_id).await?;
            match now.status {
                PaymentStatus::Cancelled => Ok(now),
                _ => Err(final_conflict(&now)),
            }
        }
    }
}

/// A bank's "this QR was paid" callback. Only the QR id is read from it, under
/// any of the names banks use (BNB QR Simple sends `QRId`, with `VoucherId`,
/// `Gloss`, `sourceBankId`, `TransactionDateTime`, ...); the rest is never
/// trusted: the check reads the bank.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"QRId": "qr-5f0c2a", "VoucherId": "8462910", "Gloss": "Pedido 42", "TransactionDateTime": "2026-03-01T10:15:00"}))]
pub struct BankNotification {
    /// The QR id (BNB's name); `qrId`, `qr_id` and `id` are read too, a number as its digits.
    #[serde(rename = "QRId")]
    #[schema(value_type = Option<String>)]
    pub qr_id: Option<Value>,
}

/// The QR id of a notification: the first of `QRId`, `qrId`, `qr_id`, `id`
/// (any case) that is a non-empty string or a number.
fn notified_qr_id(body: &Value) -> Result<String, ApiError> {
    let Value::Object(fields) = body else {
        return Err(ApiError::InvalidJson {
            field: None,
            message: "the notification must be a JSON object".into(),
        });
    };
    for name in ["qrid", "qr_id", "id"] {
        let value = fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        match value {
            Some(Value::String(s)) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
            Some(Value::Number(n)) => return Ok(n.to_string()),
            _ => {}
        }
    }
    Err(ApiError::validation(
        "QRId",
        "the QR id is required (QRId, qrId, qr_id or id): a non-empty string",
    ))
}

/// What a notification did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationAccepted {
    #[schema(example = 1)]
    pub payment_id: i64,
    #[schema(example = "qr-5f0c2a")]
    pub qr_id: String,
    /// The payment's status as stored now (the check has not run yet).
    #[schema(value_type = PaymentQrStatus)]
    pub status: PaymentStatus,
    /// `enqueued`: a check runs now; `already_queued`: one was waiting already
    /// (a repeated notification); `not_needed`: the payment's checks have ended
    /// (a final status, or flagged for an operator).
    #[schema(example = "enqueued")]
    pub check: String,
    /// The check's job, when there is one.
    pub job_id: Option<String>,
}

/// The bank says a QR was paid: its payment is checked now, on the high lane,
/// instead of at its next scheduled check (docs/design.md, "Notification, then
/// check"). Authenticated by the secret shared with the bank
/// (`BANK_NOTIFY_SECRET`, see `crate::signature`), never by an API key;
/// idempotent: a repeated notification finds the check queued, or the payment
/// final. The body is never taken as the status.
#[utoipa::path(
    post,
    path = "/api/payments/notifications",
    operation_id = "notify_payment",
    tag = "payments",
    request_body = BankNotification,
    params(
        ("X-Signature" = Option<String>, Header, description = "`sha256=` and the hex HMAC-SHA256, under BANK_NOTIFY_SECRET, of `{X-Timestamp}.{body}`"),
        ("X-Timestamp" = Option<String>, Header, description = "Unix seconds the body was signed at; at most BANK_NOTIFY_MAX_AGE from our clock"),
        ("X-Notify-Secret" = Option<String>, Header, description = "BANK_NOTIFY_SECRET itself, for a bank that cannot sign"),
    ),
    responses(
        (status = 202, description = "Accepted: a check of the payment runs now (or one was waiting already, or its checks have ended)", body = NotificationAccepted),
        (status = 400, description = "The body is not a JSON object (`invalid_json`)", body = ErrorBody),
        (status = 401, description = "No signature or secret, a wrong one, or a timestamp too far from now (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No payment has this QR id (`not_found`)", body = ErrorBody),
        (status = 413, description = "The body is over API_BODY_LIMIT_BYTES (`payload_too_large`)", body = ErrorBody),
        (status = 422, description = "No QR id under `QRId`, `qrId`, `qr_id` or `id`; `field` is `QRId` (`validation_failed`)", body = ErrorBody),
        (status = 429, description = "Too many refused notifications from this address (API_AUTH_MAX_FAILURES within API_AUTH_FAILURE_WINDOW; `too_many_failures`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`: BANK_NOTIFY_SECRET is not set (notifications are off), or the job queue is down (send it again; polling confirms the payment meanwhile). `timeout`: the request outlasted API_REQUEST_TIMEOUT", body = ErrorBody),
    ),
    security(("bank_signature" = []), ("bank_secret" = []))
)]
pub async fn notify(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<NotificationAccepted>), ApiError> {
    let notify = &state.config.payments.notify;
    let Some(secret) = &notify.secret else {
        return Err(ApiError::Unavailable {
            what: "bank notifications (BANK_NOTIFY_SECRET is not set)".into(),
            source: anyhow::anyhow!(
                "a bank notification arrived, but BANK_NOTIFY_SECRET is not set"
            ),
        });
    };
    let now = std::time::Instant::now();
    if let Some(addr) = addr {
        state.keyring.check_allowed(addr, now)?;
    }
    if let Err(refusal) = crate::signature::verify(
        secret,
        &headers,
        &body,
        Utc::now().timestamp(),
        notify.max_age,
    ) {
        if let Some(addr) = addr {
            state.keyring.record_failure(addr, now);
        }
        metrics::counter!("payment_notifications_total", "outcome" => "refused").increment(1);
        return Err(ApiError::BadSignature(refusal.message(notify.max_age)));
    }
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| crate::json::invalid_json("", &e))?;
    let qr_id = notified_qr_id(&value)?;
    let payment = payment_of(&state, &qr_id).await?;
    let (check, job_id) = if payment.next_check_at.is_none() {
        ("not_needed", None)
    } else {
        match check_now(&state, payment.id).await? {
            (true, id) => ("enqueued", Some(id)),
            (false, id) => ("already_queued", Some(id)),
        }
    };
    metrics::counter!("payment_notifications_total", "outcome" => check).increment(1);
    info!(
        payment.id = payment.id,
        payment.status = %payment.status,
        check,
        job.id = job_id.as_deref().unwrap_or(""),
        "the bank notified a payment"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(NotificationAccepted {
            payment_id: payment.id,
            qr_id: payment.qr_id,
            status: payment.status,
            check: check.to_owned(),
            job_id,
        }),
    ))
}

/// An operator's resolution of a flagged payment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolvePayment {
    /// The final status it gets: `completed` (its movement is booked),
    /// `cancelled` or `expired`. Nothing is asked of the bank.
    #[schema(value_type = String, required = true, example = "completed", pattern = "^(completed|cancelled|expired)$")]
    pub status: Option<String>,
    /// Why, kept in the payment's `operator_history`: at most 500 characters,
    /// something besides whitespace (it is trimmed), no control characters but
    /// line breaks. In the pattern, `\u0000-\u0009\u000b-\u001f\u007f-\u009f`
    /// are those control characters and the middle class excludes whitespace.
    #[schema(
        value_type = String,
        required = true,
        example = "paid in cash at the counter, receipt 0042",
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub reason: Option<String>,
}

/// The final status and the reason of a resolve, checked; the first broken
/// rule names its field.
pub(crate) fn validate_resolution(
    input: ResolvePayment,
) -> Result<(PaymentStatus, String), ApiError> {
    let status = match input.status.as_deref() {
        Some("completed") => PaymentStatus::Completed,
        Some("cancelled") => PaymentStatus::Cancelled,
        Some("expired") => PaymentStatus::Expired,
        _ => {
            return Err(ApiError::validation(
                "status",
                "must be completed, cancelled or expired",
            ));
        }
    };
    let reason = input.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(ApiError::validation(
            "reason",
            "is required: say why the payment is resolved by hand",
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::validation(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::validation(
            "reason",
            "must not contain control characters",
        ));
    }
    Ok((status, reason.to_owned()))
}

/// Resolves a payment flagged for an operator by hand: it gets the final
/// `status` (no more checks), its flag and `reason` go to `operator_history`,
/// and one resolved as completed books its movement, once. 404 when there is
/// no such payment, 409 when it is not flagged (or has a final status).
/// Audited as `payment.resolve` of `payment/ID`, for `who`.
pub async fn resolve_by_hand(
    state: &AppState,
    who: &Principal,
    payment_id: i64,
    status: PaymentStatus,
    reason: &str,
) -> Result<Payment, ApiError> {
    let target = format!("payment/{payment_id}");
    let detail = format!("{status}: {reason}");
    crate::actions::audited_with(
        state,
        who,
        ops::action::PAYMENT_RESOLVE,
        &target,
        Some(&detail),
        Box::pin(resolve_unaudited(state, who, payment_id, status, reason)),
    )
    .await
}

async fn resolve_unaudited(
    state: &AppState,
    who: &Principal,
    payment_id: i64,
    status: PaymentStatus,
    reason: &str,
) -> Result<Payment, ApiError> {
    let by_hand = ByHand {
        status,
        reason,
        by: &who.actor(),
    };
    let mut tx = state.pool.begin().await.map_err(store::StoreError::from)?;
    let resolved = payments::end_by_hand(&mut tx, payment_id, &by_hand, Ending::Flagged).await?;
    let Some(resolved) = resolved else {
        drop(tx);
        let payment = payments::get(&mut *state.conn().await?, payment_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no payment with id {payment_id}")))?;
        return Err(ApiError::Conflict {
            field: "qr_id".into(),
            message: format!(
                "payment {} is not flagged for an operator (it is {}): there is nothing to resolve",
                payment.qr_id, payment.status
            ),
        });
    };
    let booked = if status == PaymentStatus::Completed {
        payments::book_completed(&mut tx, &resolved).await?
    } else {
        false
    };
    tx.commit().await.map_err(store::StoreError::from)?;
    info!(
        payment.id = payment_id,
        payment.status = %status,
        movement.booked = booked,
        "an operator resolved a flagged payment by hand"
    );
    Ok(payments::get(&mut *state.conn().await?, payment_id)
        .await?
        .unwrap_or(resolved))
}

/// Resolves a payment flagged for an operator by hand: see [`resolve_by_hand`].
#[utoipa::path(
    post,
    path = "/api/payments/{qr_id}/resolve",
    operation_id = "resolve_payment",
    tag = "payments",
    params(("qr_id" = String, Path, description = "The bank's QR id, as `POST /api/payments/qr` answered it", example = "qr-5f0c2a")),
    request_body = ResolvePayment,
    responses(
        (status = 200, description = "Resolved: its final status, the flag and reason in `operator_history`, and its movement when completed", body = PaymentResponse),
        (status = 400, description = "Body is not the JSON expected (`invalid_json`)", body = ErrorBody),
        (status = 401, description = "No valid key (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The key's role is below `operator` (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such payment (`not_found`)", body = ErrorBody),
        (status = 409, description = "The payment is not flagged for an operator, or its status is final; `field` is `qr_id` (`conflict`)", body = ErrorBody),
        (status = 413, description = "The body is over API_BODY_LIMIT_BYTES (`payload_too_large`)", body = ErrorBody),
        (status = 422, description = "`status` is not completed, cancelled or expired, or `reason` is missing, blank or too long; `field` names it (`validation_failed`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn resolve(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(qr_id): ApiPath<String>,
    ApiJson(input): ApiJson<ResolvePayment>,
) -> Result<Json<PaymentResponse>, ApiError> {
    let (status, reason) = validate_resolution(input)?;
    let payment = payment_of(&state, &qr_id).await?;
    let resolved = resolve_by_hand(&state, &who, payment.id, status, &reason).await?;
    Ok(Json(full_response(&state, resolved).await?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(body: Value) -> CreatePaymentQr {
        serde_json::from_value(body).expect("the shape of a create")
    }

    fn field_of(body: Value) -> String {
        match validate(input(body), Utc::now()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_decimal_string_is_an_exact_amount() {
        let v = validate(
            input(json!({"amount": "125.50", "currency": "BOB", "description": "Pedido 42"})),
            Utc::now(),
        )
        .expect("valid");
        assert_eq!(
            v,
            Valid {
                amount_cents: 12_550,
                currency: Currency::Bob,
                description: "Pedido 42".into(),
                expires_at: None,
            }
        );
        let usd = validate(
            input(json!({"amount": "0.1", "currency": "USD"})),
            Utc::now(),
        )
        .expect("valid");
        assert_eq!((usd.amount_cents, usd.currency), (10, Currency::Usd));
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        for amount in [
            json!(1e3),
            json!(125.5),
            json!(10),
            json!("1e3"),
            json!("-5"),
            json!("0"),
            json!("1.234"),
            json!("12,50"),
            json!(null),
            json!(true),
        ] {
            assert_eq!(
                field_of(json!({"amount": amount, "currency": "BOB"})),
                "amount",
                "{amount}"
            );
        }
        for currency in ["EUR", "bob", ""] {
            assert_eq!(
                field_of(json!({"amount": "1", "currency": currency})),
                "currency"
            );
        }
        let long = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert_eq!(
            field_of(json!({"amount": "1", "currency": "BOB", "description": long})),
            "description"
        );
        assert_eq!(
            field_of(json!({"amount": "1", "currency": "BOB", "description": "a\u{7}b"})),
            "description"
        );
        assert_eq!(
            field_of(
                json!({"amount": "1", "currency": "BOB", "expires_at": "2001-01-01T00:00:00Z"})
            ),
            "expires_at"
        );
    }
}
