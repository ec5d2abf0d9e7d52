//! Companies (clients) and their free-text business context.
//!
//! A company is stored at once with the text it was given. A context longer than
//! `CONTEXT_MIN_LENGTH` characters is `pending`: the context-worker condenses it
//! with an LLM later, keeping the original. A shorter one is `skipped` and used as
//! it is; nothing is enqueued for it.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use jobs::v1::CondenseCompanyContext;
use serde::{Deserialize, Serialize};
use store::companies::{self, Company, ContextStatus};
use tracing::{Instrument, info, warn};

use crate::AppState;
use crate::auth::{Caller, OperatorCaller, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::params::ApiPath;
use crate::routes::RerunBy;

/// Longest company name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest context accepted, in characters (Unicode scalar values).
pub const MAX_CONTEXT_CHARS: usize = 100_000;

/// `POST /api/companies`, `GET /api/companies/{id}`,
/// `POST /api/companies/{id}/context/retry`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/companies", post(create))
        .route("/api/companies/{id}", routing::get(get))
        .route("/api/companies/{id}/context/retry", post(retry_context))
}

/// A company to store. `name` is trimmed of surrounding whitespace (Unicode
/// `White_Space`) before its rule applies; `context` is stored exactly as sent.
/// In the patterns, `\t\n...` is that whitespace and `\u0000-\u001f\u007f-\u009f`
/// the control characters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCompany {
    /// 1 to 200 characters, no control characters.
    #[schema(
        example = "Acme Logistics",
        pattern = r"^[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,198}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: String,
    /// The business context, free text: at most 100,000 characters, not blank
    /// (something besides whitespace), no NUL character. Longer than
    /// `CONTEXT_MIN_LENGTH` (default 1500) characters, it is condensed later.
    #[schema(
        example = "We run a fleet of 40 trucks between Santa Cruz and La Paz ...",
        min_length = 1,
        max_length = 100000,
        pattern = r"^[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    )]
    pub context: String,
}

/// Where the condensation of a company's context stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompanyContextStatus {
    /// Waiting for the context-worker.
    Pending,
    /// Short enough to use as it is; nothing was enqueued.
    Skipped,
    /// `context` holds the condensed text.
    Processed,
    /// Condensing failed for good: `context` is the original, `context_error` says why.
    Failed,
}

impl From<ContextStatus> for CompanyContextStatus {
    fn from(s: ContextStatus) -> Self {
        match s {
            ContextStatus::Pending => Self::Pending,
            ContextStatus::Skipped => Self::Skipped,
            ContextStatus::Processed => Self::Processed,
            ContextStatus::Failed => Self::Failed,
        }
    }
}

/// A stored company and the state of its context.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompanyResponse {
    #[schema(example = 1)]
    pub id: i64,
    #[schema(example = "Acme Logistics")]
    pub name: String,
    /// The text in use: the original until a condensation succeeds.
    pub context: String,
    /// The text as it was sent, always kept.
    pub context_original: String,
    #[schema(example = "pending")]
    pub context_status: CompanyContextStatus,
    /// Why condensing failed (or why the last attempt did), if it did.
    pub context_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Company> for CompanyResponse {
    fn from(c: Company) -> Self {
        Self {
            id: c.id,
            name: c.name,
            context: c.context,
            context_original: c.context_original,
            context_status: c.context_status.into(),
            context_error: c.context_error,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Trims the name and checks both fields; the first broken rule is the error.
fn validate(input: CreateCompany) -> Result<CreateCompany, ApiError> {
    let name = input.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::validation("name", "must not be blank"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            "must not contain control characters",
        ));
    }
    let context = input.context;
    if context.trim().is_empty() {
        return Err(ApiError::validation("context", "must not be blank"));
    }
    if context.chars().count() > MAX_CONTEXT_CHARS {
        return Err(ApiError::validation(
            "context",
            format!("must be at most {MAX_CONTEXT_CHARS} characters"),
        ));
    }
    // PostgreSQL `text` cannot hold U+0000.
    if context.contains('\0') {
        return Err(ApiError::validation(
            "context",
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok(CreateCompany { name, context })
}

/// Whether a context of this text is condensed: longer than `min_length`
/// characters is `pending`, exactly `min_length` or shorter is `skipped`.
fn status_for(context: &str, min_length: usize) -> ContextStatus {
    if context.chars().count() > min_length {
        ContextStatus::Pending
    } else {
        ContextStatus::Skipped
    }
}

/// Stores a company with its context and answers at once; a long context is
/// enqueued for condensing.
#[utoipa::path(
    post,
    path = "/api/companies",
    operation_id = "create_company",
    tag = "companies",
    request_body = CreateCompany,
    responses(
        (status = 201, description = "Stored. A context longer than CONTEXT_MIN_LENGTH characters is `pending` and is being condensed (also when the queue is down: it is enqueued later); a shorter one is `skipped`", body = CompanyResponse),
        (status = 400, description = "Body is not the JSON expected", body = ErrorBody),
        (status = 413, description = "The body is over API_BODY_LIMIT_BYTES (`payload_too_large`)", body = ErrorBody),
        (status = 422, description = "A field breaks a rule; `field` names it (`validation_failed`)", body = ErrorBody),
        (status = 503, description = "`timeout`: the request outlasted API_REQUEST_TIMEOUT; the company may still be stored. Never because the queue is down: the company is stored and its condensation follows", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(input): ApiJson<CreateCompany>,
) -> Result<Response, ApiError> {
    let input = validate(input)?;
    // Stored and enqueued in a task of its own, as persons are: a client hanging
    // up drops the handler, and a drop between the INSERT and the XADD would
    // leave the company to the reconciler instead of its job. The task keeps the
    // request span, so the job carries the request's trace.
    let company = tokio::spawn(store_company(state, input).instrument(tracing::Span::current()))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("company task failed: {e}")))??;
    let location = format!("/api/companies/{}", company.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CompanyResponse::from(company)),
    )
        .into_response())
}

/// Commits the company, then, when its context is pending, enqueues the
/// condensation. A failed enqueue is logged, not answered: the row is stored and
/// its job follows (docs/design.md, "A row and its job never disagree for long").
async fn store_company(state: AppState, input: CreateCompany) -> Result<Company, ApiError> {
    let context_chars = input.context.chars().count();
    let status = status_for(&input.context, state.config.context_min_length);
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    let company = companies::insert(&mut conn, &input.name, &input.context, status).await?;
    drop(conn);
    if company.context_status != ContextStatus::Pending {
        info!(
            company.id = company.id,
            context.length_chars = context_chars,
            context.status = "skipped",
            "company stored, context short enough to use as it is"
        );
        return Ok(company);
    }
    // The row is committed: from here on the request succeeds. The key derived
    // from the row is unique until settled, so if this enqueue fails or its reply
    // is lost (the job may exist), the context-worker's reconciler enqueues it
    // later with the same key, never a second one.
    match state
        .enqueuer
        .enqueue(jobs::rows::context_job(&company))
        .await
    {
        Ok(enqueued) => {
            info!(
                company.id = company.id,
                context.length_chars = context_chars,
                context.status = "pending",
                job.id = enqueued.id(),
                "company stored, context condensation enqueued"
            );
        }
        Err(e) => {
            warn!(
                company.id = company.id,
                context.length_chars = context_chars,
                context.status = "pending",
                error = format!("{:#}", anyhow::Error::from(e)),
                "company stored, but enqueueing the context condensation failed; the reconciler will enqueue it"
            );
        }
    }
    Ok(company)
}

#[utoipa::path(
    get,
    path = "/api/companies/{id}",
    operation_id = "get_company",
    tag = "companies",
    params(("id" = i64, Path, description = "Company id", example = 1)),
    responses(
        (status = 200, description = "The company, the context in use, the original and where the condensation stands", body = CompanyResponse),
        (status = 404, description = "No such company (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CompanyResponse>, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    companies::get(&mut conn, id)
        .await?
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::NotFound(format!("no company with id {id}")))
}

/// What retrying a failed context condensation did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContextRetryResponse {
    #[schema(example = 1)]
    pub company_id: i64,
    /// `dead_letter_retried`: the condensation's dead letter was retried, and
    /// the context-worker reopens the company as it runs it; `job_enqueued`:
    /// the company was put back to `pending` here and its condensation enqueued.
    #[schema(example = "job_enqueued")]
    pub retried_by: RerunBy,
    /// The condensation job; null when its enqueue failed (the company is
    /// pending, so the context-worker's reconciler enqueues it).
    pub job_id: Option<String>,
}

/// Condenses a company whose context failed again: back to `pending`, its
/// error kept in `context_error_history`, the original still in use meanwhile.
/// When its condensation is still in the dead-letter stream, that dead letter
/// is retried instead (the worker reopens the company as it runs it), so no
/// second condensation runs beside it. 404 when there is no such company,
/// 409 when its context has not failed.
/// Audited as `company.context_retry` of `company/ID`, for `who`.
pub async fn retry_failed_context(
    state: &AppState,
    who: &Principal,
    company_id: i64,
) -> Result<ContextRetryResponse, ApiError> {
    let target = format!("company/{company_id}");
    crate::actions::audited(
        state,
        who,
        ops::action::CONTEXT_RETRY,
        &target,
        Box::pin(retry_unaudited(state, company_id)),
    )
    .await
}

async fn retry_unaudited(
    state: &AppState,
    company_id: i64,
) -> Result<ContextRetryResponse, ApiError> {
    let company = {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        companies::get(&mut conn, company_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no company with id {company_id}")))?
    };
    let not_failed = |status: ContextStatus| ApiError::Conflict {
        field: "id".into(),
        message: format!(
            "the context of company {company_id} has not failed (it is {})",
            serde_json::to_value(CompanyContextStatus::from(status))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    };
    if company.context_status != ContextStatus::Failed {
        return Err(not_failed(company.context_status));
    }
    let reopen = async {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        let reopened = companies::reopen_failed(&mut conn, company_id).await?;
        Ok(reopened.then(|| jobs::rows::context_job(&company)))
    };
    let rerun = super::rerun(
        state,
        |m: &CondenseCompanyContext| m.company_id == company_id,
        reopen,
        // Reopened meanwhile by another operator or its worker.
        || not_failed(ContextStatus::Pending),
    )
    .await?;
    info!(
        company.id = company_id,
        retried_by = ?rerun.by,
        job.id = rerun.job_id.as_deref().unwrap_or(""),
        "an operator retried a failed context condensation"
    );
    Ok(ContextRetryResponse {
        company_id,
        retried_by: rerun.by,
        job_id: rerun.job_id,
    })
}

/// Retries the condensation of a company whose context failed: see
/// [`retry_failed_context`].
#[utoipa::path(
    post,
    path = "/api/companies/{id}/context/retry",
    operation_id = "retry_company_context",
    tag = "companies",
    params(("id" = i64, Path, description = "Company id", example = 1)),
    responses(
        (status = 202, description = "Condensing again: its dead letter retried, or the company back to `pending` and its condensation enqueued", body = ContextRetryResponse),
        (status = 401, description = "No valid key (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The key's role is below `operator` (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such company (`not_found`)", body = ErrorBody),
        (status = 409, description = "The company's context has not failed; `field` is `id` (`conflict`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn retry_context(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<ContextRetryResponse>), ApiError> {
    let retried = retry_failed_context(&state, &who, id).await?;
    Ok((StatusCode::ACCEPTED, Json(retried)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_BODY_LIMIT_BYTES;

    fn input(name: &str, context: &str) -> CreateCompany {
        CreateCompany {
            name: name.into(),
            context: context.into(),
        }
    }

    fn field_of(r: Result<CreateCompany, ApiError>) -> String {
        match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn the_name_is_trimmed_and_the_context_kept_as_sent() {
        let ok = validate(input("  Acme  ", "\n  some context \n")).expect("valid");
        assert_eq!(ok.name, "Acme");
        assert_eq!(ok.context, "\n  some context \n");
        let longest = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(validate(input(&longest, "c")).expect("valid").name, longest);
        let longest = "ü".repeat(MAX_CONTEXT_CHARS);
        assert!(validate(input("Acme", &longest)).is_ok());
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        assert_eq!(field_of(validate(input(" \u{3000} ", "c"))), "name");
        let too_long = "a".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(field_of(validate(input(&too_long, "c"))), "name");
        assert_eq!(field_of(validate(input("Ac\u{7}me", "c"))), "name");
        assert_eq!(field_of(validate(input("Acme", " \t\n "))), "context");
        assert_eq!(field_of(validate(input("Acme", ""))), "context");
        let too_long = "a".repeat(MAX_CONTEXT_CHARS + 1);
        assert_eq!(field_of(validate(input("Acme", &too_long))), "context");
        assert_eq!(field_of(validate(input("Acme", "a\0b"))), "context");
    }

    #[test]
    fn longer_than_the_threshold_in_characters_is_pending() {
        assert_eq!(status_for(&"é".repeat(10), 10), ContextStatus::Skipped);
        assert_eq!(status_for(&"é".repeat(11), 10), ContextStatus::Pending);
        assert_eq!(status_for("x", 0), ContextStatus::Pending);
    }

    #[test]
    fn the_largest_company_fits_the_default_body_limit_however_it_is_encoded() {
        // Every character escaped as a surrogate pair: 12 bytes, the most JSON
        // can spend on one character.
        let escaped = "\\ud83d\\ude00";
        let body = format!(
            r#"{{"name":"{}","context":"{}"}}"#,
            escaped.repeat(MAX_NAME_CHARS),
            escaped.repeat(MAX_CONTEXT_CHARS)
        );
        let parsed: CreateCompany = serde_json::from_str(&body).expect("json");
        assert_eq!(parsed.context.chars().count(), MAX_CONTEXT_CHARS);
        assert!(validate(parsed).is_ok());
        assert!(
            body.len() <= DEFAULT_BODY_LIMIT_BYTES,
            "{} bytes",
            body.len()
        );
    }
}
