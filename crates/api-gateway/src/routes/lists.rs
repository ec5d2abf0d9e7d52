//! The lists: persons, companies, payments, users synced from Wispro and a
//! batch's photos, each with its filters, a page at a time (`crate::paging`:
//! `limit`, `cursor`, `{"items", "next_cursor"}`). Newest first, so a row just
//! created heads the first page; a batch's photos in upload order. Rows
//! created while a client pages never shift or repeat its later pages (keyset
//! pages on id, `store::lists`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::companies::ContextStatus;
use store::lists::{self, BatchPhotoRow, PaymentFilter, PaymentRow, UserFilter};
use store::payments::{PaymentStatus, format_amount};
use store::persons::QrStatus;
use store::photos::ProcessingStatus;
use store::users::User;

use super::companies::{CompanyContextStatus, CompanyResponse};
use super::payments::{PaymentCurrency, PaymentQrStatus};
use super::persons::PersonResponse;
use super::photos::PhotoStatus;
use crate::AppState;
use crate::auth::{AdminCaller, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::paging::{Listing, Page, PageQuery, bool_filter, enum_filter, not_one_of};
use crate::params::{ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/persons", get(persons))
        .route("/api/companies", get(companies))
        .route("/api/payments", get(payments))
        .route("/api/users", get(users))
        .route("/api/photo-batches/{id}/photos", get(batch_photos))
}

/// The 400 of every list.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 400,
    description = "A parameter breaks its rule: `limit` not 1 to 200, a filter value not allowed \
                   (the message lists the allowed ones), a `cursor` that is not the \
                   `next_cursor` of this list with these filters; `field` names it \
                   (`invalid_parameter`)"
)]
pub struct BadParameter(pub ErrorBody);

/// Where a person's QR code stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PersonQrStatus {
    Pending,
    Ready,
    Failed,
}

impl From<PersonQrStatus> for QrStatus {
    fn from(s: PersonQrStatus) -> Self {
        match s {
            PersonQrStatus::Pending => Self::Pending,
            PersonQrStatus::Ready => Self::Ready,
            PersonQrStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PersonFilter {
    /// Only persons whose QR code is in this state.
    #[param(value_type = Option<PersonQrStatus>, nullable = false)]
    pub qr_status: Option<String>,
}

#[utoipa::path(get, path = "/api/persons", operation_id = "list_persons", tag = "persons",
    params(PersonFilter, PageQuery),
    responses((status = 200, description = "A page of persons, newest first", body = Page<PersonResponse>),
        BadParameter),
    security(("bearer" = [])))]
pub async fn persons(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(filter): ApiQuery<PersonFilter>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<PersonResponse>>, ApiError> {
    let status = enum_filter::<PersonQrStatus>("qr_status", filter.qr_status.as_deref())?;
    let filters: Vec<_> = filter
        .qr_status
        .iter()
        .map(|s| ("qr_status", s.as_str()))
        .collect();
    let listing = Listing::new("persons", &filters, &page)?;
    let rows = lists::persons(
        &mut *state.conn().await?,
        status.map(Into::into),
        listing.keyset(),
    )
    .await?;
    Ok(Json(listing.page(rows, |p| p.id, Into::into)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompanyFilter {
    /// Only companies whose context is in this state.
    #[param(value_type = Option<CompanyContextStatus>, nullable = false)]
    pub context_status: Option<String>,
}

impl From<CompanyContextStatus> for ContextStatus {
    fn from(s: CompanyContextStatus) -> Self {
        match s {
            CompanyContextStatus::Pending => Self::Pending,
            CompanyContextStatus::Skipped => Self::Skipped,
            CompanyContextStatus::Processed => Self::Processed,
            CompanyContextStatus::Failed => Self::Failed,
        }
    }
}

#[utoipa::path(get, path = "/api/companies", operation_id = "list_companies", tag = "companies",
    params(CompanyFilter, PageQuery),
    responses((status = 200, description = "A page of companies, newest first: one just created heads the first page", body = Page<CompanyResponse>),
        BadParameter),
    security(("bearer" = [])))]
pub async fn companies(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(filter): ApiQuery<CompanyFilter>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<CompanyResponse>>, ApiError> {
    let status =
        enum_filter::<CompanyContextStatus>("context_status", filter.context_status.as_deref())?;
    let filters: Vec<_> = filter
        .context_status
        .iter()
        .map(|s| ("context_status", s.as_str()))
        .collect();
    let listing = Listing::new("companies", &filters, &page)?;
    let rows = lists::companies(
        &mut *state.conn().await?,
        status.map(Into::into),
        listing.keyset(),
    )
    .await?;
    Ok(Json(listing.page(rows, |c| c.id, Into::into)))
}

/// A payment as `GET /api/payments/{qr_id}` shows it, without its QR image
/// (`/api/payments/{qr_id}` has it), its checks and its movements.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentSummary {
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
    pub expires_at: DateTime<Utc>,
    /// Checks made at the bank so far.
    pub checks_made: i32,
    /// When the next check is due; null once checks ended.
    pub next_check_at: Option<DateTime<Utc>>,
    /// Checks stopped without a final status: an operator should look;
    /// `operator_reason` says why.
    pub needs_operator: bool,
    pub operator_reason: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PaymentRow> for PaymentSummary {
    fn from(p: PaymentRow) -> Self {
        Self {
            id: p.id,
            qr_id: p.qr_id,
            amount: format_amount(p.amount_cents),
            currency: p.currency.into(),
            description: p.description,
            status: p.status,
            expires_at: p.expires_at,
            checks_made: p.checks_made,
            next_check_at: p.next_check_at,
            needs_operator: p.needs_operator,
            operator_reason: p.operator_reason,
            paid_at: p.paid_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentListFilter {
    /// Only payments in this status.
    #[param(value_type = Option<PaymentQrStatus>, nullable = false)]
    pub status: Option<String>,
    /// Only payments flagged for an operator (`true`: their checks stopped
    /// without a final status), or only the others (`false`).
    #[param(value_type = Option<bool>, nullable = false)]
    pub needs_operator: Option<String>,
}

#[utoipa::path(get, path = "/api/payments", operation_id = "list_payments", tag = "payments",
    params(PaymentListFilter, PageQuery),
    responses((status = 200, description = "A page of payments, newest first, without their QR images", body = Page<PaymentSummary>),
        BadParameter),
    security(("bearer" = [])))]
pub async fn payments(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(filter): ApiQuery<PaymentListFilter>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<PaymentSummary>>, ApiError> {
    let status = filter
        .status
        .as_deref()
        .map(|s| s.parse::<PaymentStatus>())
        .transpose()
        .map_err(|_| not_one_of::<PaymentQrStatus>("status"))?;
    let needs_operator = bool_filter("needs_operator", filter.needs_operator.as_deref())?;
    let filters: Vec<_> = [
        ("status", &filter.status),
        ("needs_operator", &filter.needs_operator),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value.as_deref()?)))
    .collect();
    let listing = Listing::new("payments", &filters, &page)?;
    let filter = PaymentFilter {
        status,
        needs_operator,
    };
    let rows = lists::payments(&mut *state.conn().await?, filter, listing.keyset()).await?;
    Ok(Json(listing.page(rows, |p| p.id, Into::into)))
}

/// A user synced from Wispro (never its password).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserResponse {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    /// As the customer's record had it (bare, V-/E- prefixed, dotted).
    #[schema(example = "V-12.345.678")]
    pub id_number: Option<String>,
    /// `id_number` normalised: the letter, then the digits without leading
    /// zeros; null when it is no identity number.
    #[schema(example = "V12345678")]
    pub id_number_key: Option<String>,
    /// The Wispro client it is linked to.
    #[schema(example = "0b9e3f6c-6d53-4c41-9d7a-3f1e2a4b5c6d")]
    pub wispro_id: Option<String>,
    pub zone: Option<String>,
    pub phone: Option<String>,
    pub phone_mobile: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            name: u.name,
            email: u.email,
            id_number: u.id_number,
            id_number_key: u.id_number_key,
            wispro_id: u.id_wispro,
            zone: u.zone,
            phone: u.phone,
            phone_mobile: u.phone_mobile,
            address: u.address,
            city: u.city,
            state: u.state,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// Longest `wispro_id` looked up (Wispro's ids are UUIDs).
const MAX_WISPRO_ID: usize = 100;
/// Longest `id_number` read (a number with its dots and spaces).
const MAX_ID_NUMBER: usize = 64;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListFilter {
    /// Only the users of this identity number, as the sync matches them: the
    /// letter (V, E, J, G or P) if any and the digits, spaces, dots and dashes
    /// ignored, leading zeros too (`V-12.345.678` is `V12345678`); a bare
    /// number also finds its V and E users, a V or E one the bare one.
    #[param(
        pattern = r"^[\t\n\u000b\f\r .\u00a0-]*([VEJGPvejgp][\t\n\u000b\f\r .\u00a0-]*)?(0[\t\n\u000b\f\r .\u00a0-]*)*[1-9]([\t\n\u000b\f\r .\u00a0-]*[0-9]){4,9}[\t\n\u000b\f\r .\u00a0-]*$",
        max_length = 64,
        example = "V-12.345.678",
        nullable = false
    )]
    pub id_number: Option<String>,
    /// Only the user linked to this Wispro client id.
    #[param(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*$",
        example = "0b9e3f6c-6d53-4c41-9d7a-3f1e2a4b5c6d",
        nullable = false
    )]
    pub wispro_id: Option<String>,
}

/// The 403 of the users list: it needs an admin key.
#[derive(utoipa::IntoResponses)]
#[response(status = 403, description = "Not an admin key (`forbidden`)")]
pub struct AdminOnly(pub ErrorBody);

#[utoipa::path(get, path = "/api/users", operation_id = "list_users", tag = "users",
    params(UserListFilter, PageQuery),
    responses((status = 200, description = "A page of the users synced from Wispro, newest first", body = Page<UserResponse>),
        BadParameter, AdminOnly),
    security(("bearer" = [])))]
pub async fn users(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiQuery(filter): ApiQuery<UserListFilter>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<UserResponse>>, ApiError> {
    let mut conn = state.conn().await?;
    let key = match filter.id_number.as_deref() {
        None => None,
        Some(raw) => {
            let not_a_number = || {
                ApiError::parameter(
                    "id_number",
                    "must be an identity number: an optional letter V, E, J, G or P, then 5 \
                     to 10 digits (dots, dashes and spaces ignored), such as V-12.345.678",
                )
            };
            // PostgreSQL text holds no NUL; the length bounds the work.
            if raw.len() > MAX_ID_NUMBER || raw.contains('\0') {
                return Err(not_a_number());
            }
            // The key as the database computes it for users.id_number_key.
            Some(
                store::users::id_number_key(&mut conn, raw)
                    .await?
                    .ok_or_else(not_a_number)?,
            )
        }
    };
    if let Some(id) = &filter.wispro_id
        && (id.is_empty() || id.chars().count() > MAX_WISPRO_ID || id.contains('\0'))
    {
        return Err(ApiError::parameter(
            "wispro_id",
            format!("must be 1 to {MAX_WISPRO_ID} characters"),
        ));
    }
    let filters: Vec<_> = [("id_number", &key), ("wispro_id", &filter.wispro_id)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
        .collect();
    let listing = Listing::new("users", &filters, &page)?;
    let filter = UserFilter {
        id_number_keys: key.as_deref().map(lists::matching_keys),
        id_wispro: filter.wispro_id,
    };
    let rows = lists::users(&mut conn, &filter, listing.keyset()).await?;
    Ok(Json(listing.page(rows, |u| u.id, Into::into)))
}

/// A photo of a batch: where its processing stands and the bibs found on it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchPhoto {
    #[schema(example = 42)]
    pub id: i64,
    #[schema(example = "completed")]
    pub status: PhotoStatus,
    /// Why processing failed, or why the last attempt did.
    pub error: Option<String>,
    /// Attempts started so far.
    pub attempts: i32,
    /// The file name sent with the upload.
    pub original_name: Option<String>,
    /// The URL a photo given by URL is fetched from.
    pub source_url: Option<String>,
    /// `/api/photos/{id}/thumbnail` once there is one.
    pub thumbnail_url: Option<String>,
    /// How many bibs were detected (0 until `completed`).
    pub detections: usize,
    /// The bib numbers detected, most confident first; the boxes are at
    /// `/api/photos/{id}`.
    #[schema(example = json!(["1234", "87"]))]
    pub numbers: Vec<String>,
    pub processed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<BatchPhotoRow> for BatchPhoto {
    fn from(p: BatchPhotoRow) -> Self {
        Self {
            id: p.id,
            status: p.processing_status.into(),
            error: p.processing_error,
            attempts: p.attempts,
            original_name: p.original_name,
            source_url: p.source_url,
            thumbnail_url: p
                .thumbnail_path
                .map(|_| format!("/api/photos/{}/thumbnail", p.id)),
            detections: p.numbers.len(),
            numbers: p.numbers,
            processed_at: p.processed_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl From<PhotoStatus> for ProcessingStatus {
    fn from(s: PhotoStatus) -> Self {
        match s {
            PhotoStatus::Pending => Self::Pending,
            PhotoStatus::Processing => Self::Processing,
            PhotoStatus::Completed => Self::Completed,
            PhotoStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchPhotoFilter {
    /// Only photos whose processing is in this state.
    #[param(value_type = Option<PhotoStatus>, nullable = false)]
    pub status: Option<String>,
}

#[utoipa::path(get, path = "/api/photo-batches/{id}/photos", operation_id = "list_batch_photos", tag = "photos",
    params(("id" = i64, Path, description = "Batch id", example = 7), BatchPhotoFilter, PageQuery),
    responses((status = 200, description = "A page of the batch's photos in upload order, with their status and the bibs found (not their files)", body = Page<BatchPhoto>),
        BadParameter,
        (status = 404, description = "No such batch (`not_found`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn batch_photos(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(filter): ApiQuery<BatchPhotoFilter>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<BatchPhoto>>, ApiError> {
    let status = enum_filter::<PhotoStatus>("status", filter.status.as_deref())?;
    let batch = id.to_string();
    let mut filters = vec![("batch", batch.as_str())];
    filters.extend(filter.status.iter().map(|s| ("status", s.as_str())));
    let listing = Listing::new("batch-photos", &filters, &page)?;
    let rows = lists::batch_photos(
        &mut *state.conn().await?,
        id,
        status.map(Into::into),
        listing.keyset(),
    )
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no photo batch with id {id}")))?;
    Ok(Json(listing.page(rows, |p| p.id, Into::into)))
}
