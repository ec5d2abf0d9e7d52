//! Key management and the audit log, for admins: `/api/admin/keys` and
//! `/api/admin/audit`. Creating and revoking a key goes through `ops::keys`,
//! as `queuectl keys` does, and is recorded in the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::{AdminCaller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::params::{ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/keys", get(list).post(create))
        .route("/api/admin/keys/{id}", delete(revoke))
        .route("/api/admin/audit", get(audit_log))
}

/// A new API key.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Who or what holds the key: 1 to 100 characters of A-Z a-z 0-9 . _ @ -,
    /// starting with a letter or digit. Names need not be unique; the prefix is.
    #[schema(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$",
        min_length = 1,
        max_length = 100,
        example = "ops-alice"
    )]
    pub name: String,
    pub role: Role,
    /// When the key stops working, in the future: an RFC 3339 time
    /// (`2027-01-31T00:00:00Z`) or a duration from now (`30d`, `12h`, `90m`).
    /// Absent or null: it works until revoked.
    #[schema(example = "30d", nullable = false)]
    pub expires: Option<String>,
}

impl CreateKey {
    /// The expiry, or 422 naming the field.
    fn validate(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
        ops::keys::check_name(&self.name).map_err(|e| ApiError::validation("name", e))?;
        let Some(expires) = &self.expires else {
            return Ok(None);
        };
        let at = ops::parse_expiry(expires, now).map_err(|e| ApiError::validation("expires", e))?;
        if at <= now {
            return Err(ApiError::validation("expires", "must be in the future"));
        }
        Ok(Some(at))
    }
}

/// A stored key; its secret part is never shown again.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyResponse {
    pub id: i64,
    pub name: String,
    /// The start of the key, in clear: `rsq_ab12cd34`.
    #[schema(example = "rsq_ab12cd34")]
    pub prefix: String,
    pub role: Role,
    /// Who created it, as the audit log names them.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used, to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<store::keys::ApiKey> for KeyResponse {
    fn from(k: store::keys::ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role.into(),
            created_by: k.created_by,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A key just created, with the whole key: shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedKeyResponse {
    /// The whole key, for `Authorization: Bearer`: store it now, it is not
    /// kept and cannot be shown again.
    #[schema(example = "rsq_ab12cd34_7GQ2mJ3kP9xV0bN5cR8tW1yZ4aD6fH2jL5nQ8sU0")]
    pub key: String,
    #[serde(flatten)]
    pub stored: KeyResponse,
}

/// An entry of the audit log.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntryResponse {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who: `ops-alice (rsq_ab12cd34)`, `bootstrap-admin (API_ADMIN_TOKEN)`, `queuectl:root`.
    pub actor: String,
    /// What: `queue.retry`, `queue.retry_all`, `queue.delete`, `queue.flush`,
    /// `queue.pause`, `queue.resume`, `key.create`, `key.revoke`, ...
    pub action: String,
    /// To what: `qr/1733-0`, `qr`, `key rsq_ab12cd34 (ops-alice)`, ...
    pub target: String,
    /// `ok`, the error, or `pending` (recorded before it ran; the outcome never came).
    pub outcome: String,
    pub detail: Option<String>,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            detail: e.detail,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPageResponse {
    /// Newest first.
    pub items: Vec<AuditEntryResponse>,
    /// Pass as `before` for the next (older) page.
    pub next: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50, nullable = false)]
    pub limit: Option<i64>,
    /// Only entries older than this one (an entry id, as in `next`).
    #[param(minimum = 1, example = 120, nullable = false)]
    pub before: Option<i64>,
}

/// The 403 of every route here: they need an admin key.
#[derive(utoipa::IntoResponses)]
#[response(status = 403, description = "Not an admin key (`forbidden`)")]
pub struct Forbidden(pub ErrorBody);

#[utoipa::path(post, path = "/api/admin/keys", operation_id = "create_api_key", tag = "admin",
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `key` is the whole key, shown this once", body = CreatedKeyResponse),
        (status = 400, description = "Not the JSON expected (`invalid_json`, naming the field)", body = ErrorBody),
        Forbidden,
        (status = 422, description = "`name` breaks its rule or `expires` is neither a future RFC 3339 time nor a duration (`validation_failed`, naming the field)", body = ErrorBody),
        (status = 503, description = "The audit log or the key store is unavailable (`unavailable`): no key was created", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminCaller(who): AdminCaller,
    ApiJson(input): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKeyResponse>), ApiError> {
    let expires_at = input.validate(Utc::now())?;
    let created = ops::keys::create(
        &who.auditor(&state),
        &state.pool,
        &input.name,
        input.role.into(),
        expires_at,
    )
    .await?;
    tracing::info!(key.id = created.stored.id, key.prefix = %created.stored.prefix, key.role = %created.stored.role, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyResponse {
            key: created.key,
            stored: created.stored.into(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/admin/keys", operation_id = "list_api_keys", tag = "admin",
    responses((status = 200, description = "Every key, newest first, revoked and expired ones too", body = [KeyResponse]), Forbidden),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminCaller,
) -> Result<Json<Vec<KeyResponse>>, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    let keys = store::keys::list(&mut conn).await?;
    Ok(Json(keys.into_iter().map(Into::into).collect()))
}

#[utoipa::path(delete, path = "/api/admin/keys/{id}", operation_id = "revoke_api_key", tag = "admin",
    params(("id" = i64, Path, description = "Key id", example = 1)),
    responses(
        (status = 200, description = "Revoked (a key revoked before keeps its first `revoked_at`); it stops working within API_KEY_CACHE_TTL on every replica", body = KeyResponse),
        Forbidden,
        (status = 404, description = "No such key (`not_found`)", body = ErrorBody),
        (status = 503, description = "The audit log or the key store is unavailable (`unavailable`): nothing was revoked", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    AdminCaller(who): AdminCaller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<KeyResponse>, ApiError> {
    let key = ops::keys::revoke(&who.auditor(&state), &state.pool, id).await?;
    state.keyring.forget(id);
    tracing::info!(key.id = id, key.prefix = %key.prefix, "API key revoked");
    Ok(Json(key.into()))
}

#[utoipa::path(get, path = "/api/admin/audit", operation_id = "list_audit_log", tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log, newest first", body = AuditPageResponse),
        Forbidden,
        (status = 422, description = "`limit` out of range or `before` not positive (`validation_failed`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPageResponse>, ApiError> {
    let limit = q.limit.unwrap_or(audit::DEFAULT_PAGE);
    if !(1..=audit::MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {}", audit::MAX_PAGE),
        ));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::validation("before", "must be at least 1"));
    }
    let page = audit::page(&state, q.before, limit).await?;
    Ok(Json(AuditPageResponse {
        items: page.entries.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}
