//! Registration of people and their QR codes.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::persons::{self, NewPerson, Person, QrStatus};
use tracing::{Instrument, info, warn};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::params::ApiPath;

/// `POST /api/persons`, `GET /api/persons/{id}`, `GET /api/persons/{id}/qr`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/persons", post(create))
        .route("/api/persons/{id}", routing::get(get))
        .route("/api/persons/{id}/qr", routing::get(qr))
}

/// A person to register. Surrounding whitespace (Unicode `White_Space`) is trimmed
/// from every field before its rule applies, and the patterns say so: `\t\n...`
/// in them is that whitespace, `\u0000-\u001f\u007f-\u009f` the control characters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePerson {
    /// Identity document, e.g. `V-12345678`: 4 to 32 characters of A-Z a-z 0-9 - .
    #[schema(
        example = "V-12345678",
        pattern = r"^[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9.-]{4,32}[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub document: String,
    /// 1 to 100 characters, no control characters (`NAME_PATTERN`).
    #[schema(schema_with = first_name_schema)]
    pub first_name: String,
    /// As `first_name`.
    #[schema(schema_with = last_name_schema)]
    pub last_name: String,
    /// An address like `name@example.com`, at most 254 characters; blank or null
    /// means none.
    #[schema(
        example = "ana@example.com",
        pattern = r"^[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*((?=[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{1,254}[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$)[^@\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+@[^.\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*\.[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^.\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub email: Option<String>,
}

/// The rule of a first or last name, trimmed (see [`CreatePerson`]): 1 to 100
/// characters, no control characters.
const NAME_PATTERN: &str = r"^[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]{0,98}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$";

/// The schema of a name field, as the derive writes one with `example` and
/// `pattern` (the document is the same), so that both names share one rule.
#[allow(deprecated)] // `example`, not `examples`: the document keeps its keyword.
fn name_schema(example: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("1 to 100 characters, no control characters."))
        .example(Some(example.into()))
        .pattern(Some(NAME_PATTERN))
        .build()
}

fn first_name_schema() -> Object {
    name_schema("Ana")
}

fn last_name_schema() -> Object {
    name_schema("Pérez")
}

/// A stored person and the state of their QR code.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PersonResponse {
    pub id: i64,
    pub document: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    /// The exact text the QR encodes.
    pub qr_content: String,
    /// Storage path of the QR image, fixed when the person is stored.
    pub qr_path: String,
    /// `pending`, `ready` or `failed`.
    #[schema(example = "pending")]
    pub qr_status: String,
    /// Last rendering error, if any.
    pub qr_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Person> for PersonResponse {
    fn from(p: Person) -> Self {
        let qr_status = match p.qr_status {
            QrStatus::Pending => "pending",
            QrStatus::Ready => "ready",
            QrStatus::Failed => "failed",
        };
        Self {
            id: p.id,
            document: p.document,
            first_name: p.first_name,
            last_name: p.last_name,
            email: p.email,
            qr_content: p.qr_content,
            qr_path: p.qr_path,
            qr_status: qr_status.to_owned(),
            qr_error: p.qr_error,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Trims and checks a registration; the first broken rule is the error.
fn validate(input: CreatePerson) -> Result<CreatePerson, ApiError> {
    let document = input.document.trim().to_owned();
    if !(4..=32).contains(&document.len()) {
        return Err(ApiError::validation(
            "document",
            "must be 4 to 32 characters long",
        ));
    }
    if !document
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(ApiError::validation(
            "document",
            "may contain only letters, digits, '-' and '.'",
        ));
    }
    let name = |field: &str, value: String| -> Result<String, ApiError> {
        let v = value.trim().to_owned();
        if v.is_empty() {
            return Err(ApiError::validation(field, "must not be blank"));
        }
        if v.chars().count() > 100 {
            return Err(ApiError::validation(
                field,
                "must be at most 100 characters",
            ));
        }
        if v.chars().any(char::is_control) {
            return Err(ApiError::validation(
                field,
                "must not contain control characters",
            ));
        }
        Ok(v)
    };
    let first_name = name("first_name", input.first_name)?;
    let last_name = name("last_name", input.last_name)?;
    let email = match input.email.map(|e| e.trim().to_owned()) {
        None => None,
        Some(e) if e.is_empty() => None,
        Some(e) => {
            let valid = e.chars().count() <= 254
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                && e.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                });
            if !valid {
                return Err(ApiError::validation(
                    "email",
                    "must be an email address like name@example.com",
                ));
            }
            Some(e)
        }
    };
    Ok(CreatePerson {
        document,
        first_name,
        last_name,
        email,
    })
}

/// Stores a person with the path their QR will have, enqueues its rendering and
/// answers at once.
#[utoipa::path(
    post,
    path = "/api/persons",
    operation_id = "create_person",
    tag = "persons",
    request_body = CreatePerson,
    responses(
        (status = 201, description = "Stored; the QR is being generated (also when the queue is down: it is enqueued later)", body = PersonResponse),
        (status = 400, description = "Body is not the JSON expected", body = ErrorBody),
        (status = 409, description = "A person with this document exists; nothing enqueued", body = ErrorBody),
        (status = 413, description = "The body is over API_BODY_LIMIT_BYTES (`payload_too_large`)", body = ErrorBody),
        (status = 422, description = "A field breaks a rule; `field` names it (`validation_failed`)", body = ErrorBody),
        (status = 503, description = "`timeout`: the request outlasted API_REQUEST_TIMEOUT; the registration may still complete. Never because the queue is down: the person is stored and the QR follows", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(input): ApiJson<CreatePerson>,
) -> Result<Response, ApiError> {
    let input = validate(input)?;
    // Stored and enqueued in a task of its own: hyper drops a handler whose client
    // disconnects, and a drop between the INSERT and the XADD would leave the
    // person waiting for the reconciler (seconds) instead of its job (milliseconds).
    // The task keeps the request span, so the job carries the request's trace.
    let person = tokio::spawn(register(state, input).instrument(tracing::Span::current()))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("registration task failed: {e}")))??;
    let location = format!("/api/persons/{}", person.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(PersonResponse::from(person)),
    )
        .into_response())
}

/// Commits the person, then enqueues its QR job. A failed enqueue is logged,
/// not answered: the row is stored and its job follows (docs/design.md, "A row and its
/// job never disagree for long").
async fn register(state: AppState, input: CreatePerson) -> Result<Person, ApiError> {
    let qr_content = format!("{}{}", state.config.qr_content_prefix, input.document);
    let qr_path = format!(
        "qr/{}.{}",
        input.document,
        state.config.qr_format.extension()
    );
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    let person = match persons::insert(
        &mut conn,
        &NewPerson {
            document: &input.document,
            first_name: &input.first_name,
            last_name: &input.last_name,
            email: input.email.as_deref(),
            qr_content: &qr_content,
            qr_path: &qr_path,
        },
    )
    .await
    {
        Ok(p) => p,
        Err(store::StoreError::Duplicate { .. }) => {
            return Err(ApiError::Conflict {
                field: "document".into(),
                message: "a person with this document is already registered".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    drop(conn);
    // The row is committed: from here on the registration succeeds. The job is
    // enqueued with a key derived from the row, unique until settled, so if this
    // enqueue fails or its reply is lost (the job may exist), the qr-worker's
    // reconciler enqueues it later with the same key, never a second one.
    match state.enqueuer.enqueue(jobs::rows::qr_job(&person)).await {
        Ok(enqueued) => {
            info!(person.id = person.id, job.id = enqueued.id(), qr.path = %person.qr_path, "person registered, QR job enqueued");
        }
        Err(e) => {
            warn!(
                person.id = person.id,
                error = format!("{:#}", anyhow::Error::from(e)),
                "person registered, but enqueueing the QR job failed; the reconciler will enqueue it"
            );
        }
    }
    Ok(person)
}

#[utoipa::path(
    get,
    path = "/api/persons/{id}",
    operation_id = "get_person",
    tag = "persons",
    params(("id" = i64, Path, description = "Person id", example = 1)),
    responses(
        (status = 200, description = "The person and the state of their QR code", body = PersonResponse),
        (status = 404, description = "No such person (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PersonResponse>, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    persons::get(&mut conn, id)
        .await?
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::NotFound(format!("no person with id {id}")))
}

/// The QR image is not there yet.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QrNotReady {
    /// `pending`.
    pub qr_status: String,
    pub message: String,
    pub qr_error: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/persons/{id}/qr",
    tag = "persons",
    params(("id" = i64, Path, description = "Person id", example = 1)),
    responses(
        (status = 200, description = "The QR image, PNG or SVG (QR_FORMAT)", content(("image/png"), ("image/svg+xml"))),
        (status = 202, description = "Still being generated", body = QrNotReady),
        (status = 404, description = "No such person (`not_found`), or generating their QR code failed (`qr_failed`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn qr(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    let person = persons::get(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no person with id {id}")))?;
    drop(conn);
    match person.qr_status {
        QrStatus::Ready => {
            let bytes = state
                .storage
                .get(&person.qr_path)
                .await
                .map_err(|e| ApiError::Internal(e.into()))?
                .ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!(
                        "person {id} is ready but {} is missing",
                        person.qr_path
                    ))
                })?;
            let content_type = if person.qr_path.ends_with(".svg") {
                "image/svg+xml"
            } else {
                "image/png"
            };
            Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
        }
        QrStatus::Pending => Ok((
            StatusCode::ACCEPTED,
            Json(QrNotReady {
                qr_status: "pending".into(),
                message: "the QR code is being generated; try again shortly".into(),
                qr_error: person.qr_error,
            }),
        )
            .into_response()),
        QrStatus::Failed => Err(ApiError::QrFailed(match person.qr_error {
            Some(reason) => {
                format!("generating the QR code failed ({reason}); an admin can retry the job")
            }
            None => "generating the QR code failed; an admin can retry the job".into(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(document: &str, email: Option<&str>) -> CreatePerson {
        CreatePerson {
            document: document.into(),
            first_name: " Ana ".into(),
            last_name: "Pérez".into(),
            email: email.map(Into::into),
        }
    }

    fn field_of(r: Result<CreatePerson, ApiError>) -> String {
        match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn valid_input_is_trimmed() {
        let ok = validate(input(" V-12345678 ", Some(" ana@example.com "))).expect("valid");
        assert_eq!(ok.document, "V-12345678");
        assert_eq!(ok.first_name, "Ana");
        assert_eq!(ok.email.as_deref(), Some("ana@example.com"));
        assert_eq!(
            validate(input("V-1234", Some(""))).expect("valid").email,
            None
        );
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        assert_eq!(field_of(validate(input("V1", None))), "document");
        assert_eq!(field_of(validate(input("V-12/34", None))), "document");
        assert_eq!(
            field_of(validate(input("V-1234", Some("not-an-email")))),
            "email"
        );
        let mut blank = input("V-1234", None);
        blank.last_name = "  ".into();
        assert_eq!(field_of(validate(blank)), "last_name");
    }
}
