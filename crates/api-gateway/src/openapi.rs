//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::Modify;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use crate::auth::Role;
use crate::error::{ErrorBody, SyncConflict};
use crate::paging::Page;
use crate::routes::{companies, jobs, keys, lists, payments, persons, photos, queues, sync};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "rsq api-gateway",
        description = "Stores records at once and hands slow work to background workers."
    ),
    paths(
        persons::create,
        persons::get,
        persons::qr,
        companies::create,
        companies::get,
        companies::retry_context,
        queues::list,
        queues::failed,
        queues::retry,
        queues::retry_all,
        queues::flush,
        queues::delete,
        queues::pause,
        queues::resume,
        jobs::list,
        jobs::show,
        jobs::promote,
        jobs::delete,
        jobs::history,
        sync::start,
        sync::get,
        photos::upload,
        photos::search,
        photos::get,
        photos::status,
        photos::thumbnail,
        photos::original,
        photos::batch,
        payments::create,
        payments::get,
        payments::qr_png,
        payments::cancel,
        payments::notify,
        payments::resume,
        payments::resolve,
        keys::create,
        keys::list,
        keys::revoke,
        keys::audit_log,
        lists::persons,
        lists::companies,
        lists::payments,
        lists::users,
        lists::batch_photos,
    ),
    components(schemas(
        ErrorBody,
        persons::CreatePerson,
        persons::PersonResponse,
        persons::QrNotReady,
        companies::CreateCompany,
        companies::CompanyResponse,
        companies::CompanyContextStatus,
        companies::ContextRetryResponse,
        queues::QueueStatsResponse,
        queues::RetentionResponse,
        queues::DeadLetterResponse,
        queues::DeadLetterPage,
        queues::Retried,
        queues::Count,
        queues::Paused,
        jobs::JobState,
        jobs::JobSummary,
        jobs::JobPage,
        jobs::JobDetail,
        jobs::MinuteStats,
        jobs::History,
        SyncConflict,
        sync::SyncRunStarted,
        sync::SyncRunResponse,
        sync::SyncRunStatus,
        photos::PhotoUrls,
        photos::PhotoFiles,
        photos::PhotosAccepted,
        photos::PhotoStatus,
        photos::PhotoStatusResponse,
        photos::PhotoResponse,
        photos::DetectionResponse,
        photos::BoundingBox,
        photos::BibSearchResponse,
        photos::BibPhoto,
        photos::BatchResponse,
        payments::CreatePaymentQr,
        payments::PaymentResponse,
        payments::PaymentCurrency,
        payments::PaymentQrStatus,
        payments::PaymentCheckResponse,
        payments::MovementResponse,
        payments::ResumeResponse,
        payments::OperatorFlagResponse,
        payments::BankNotification,
        payments::NotificationAccepted,
        payments::ResolvePayment,
        crate::routes::RerunBy,
        Role,
        keys::CreateKey,
        keys::KeyResponse,
        keys::CreatedKeyResponse,
        keys::AuditEntryResponse,
        keys::AuditPageResponse,
        lists::PersonQrStatus,
        lists::PaymentSummary,
        lists::UserResponse,
        lists::BatchPhoto,
        Page<persons::PersonResponse>,
        Page<companies::CompanyResponse>,
        Page<lists::PaymentSummary>,
        Page<lists::UserResponse>,
        Page<lists::BatchPhoto>,
    )),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "persons", description = "Registration and QR codes (any role)"),
        (name = "companies", description = "Companies and their business context, condensed in the background when long (any role)"),
        (name = "queues", description = "Queue operations; those that change state are recorded in the audit log (operator or admin)"),
        (name = "sync", description = "The Wispro customer sync: start a run, follow it (admin)"),
        (name = "photos", description = "Race photos: bulk upload, processing status, batches, search by bib (any role)"),
        (name = "payments", description = "Payment QRs created at the bank and checked in the background until paid (any role); the bank's paid notification (its shared secret, no key); resume and resolve by hand of a flagged payment (operator)"),
        (name = "admin", description = "API keys (created, listed, revoked) and the audit log (admin)"),
        (name = "users", description = "The users synced from Wispro, by identity number or Wispro id (admin)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`rsq_ab12cd34_...`, created by an admin with \
                         `POST /api/admin/keys` or `queuectl keys create`) or a bootstrap \
                         token (`API_ADMIN_TOKEN`: admin, `API_USER_TOKEN`: user). Roles: \
                         `user` the domain API (persons, companies, photos, payments); \
                         `operator` also the queues; `admin` everything, the sync, the users, keys \
                         and the audit log included. A wrong, expired or revoked key is \
                         401; a role too low 403; `API_AUTH_MAX_FAILURES` wrong keys \
                         from one address within `API_AUTH_FAILURE_WINDOW` are answered \
                         429 with `Retry-After` until the window ends.",
                    ))
                    .build(),
            ),
        );
        // The bank's notification: its shared secret, never an API key
        // (`crate::signature`).
        components.add_security_scheme(
            "bank_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::signature::SIGNATURE_HEADER,
                "`sha256=` and the hex HMAC-SHA256, under BANK_NOTIFY_SECRET, of \
                 `{X-Timestamp}.{body}`; `X-Timestamp` (Unix seconds) within \
                 BANK_NOTIFY_MAX_AGE of our clock.",
            ))),
        );
        components.add_security_scheme(
            "bank_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::signature::SECRET_HEADER,
                "BANK_NOTIFY_SECRET itself, for a bank that cannot sign.",
            ))),
        );
    }
}

/// The answers any operation may give, declared once under `components.responses`
/// and referenced by every operation that does not declare the status itself: 400
/// wherever a path or query parameter may not parse, 401 and 429 wherever a key is
/// required, 500, and 503 `timeout` (`API_REQUEST_TIMEOUT`). All carry the one
/// error schema, `ErrorBody`.
struct CommonResponses;

/// Which operations may give a common answer.
#[derive(Clone, Copy, PartialEq)]
enum When {
    HasParameters,
    Secured,
    Always,
}

impl CommonResponses {
    const RESPONSES: [(&'static str, &'static str, When, &'static str); 5] = [
        (
            "400",
            "InvalidParameter",
            When::HasParameters,
            "A path or query parameter does not parse: not a number, not UTF-8, given \
             twice (`invalid_parameter`); the message names it.",
        ),
        (
            "401",
            "Unauthorized",
            When::Secured,
            "No key, or not a valid one: unknown, expired or revoked (`unauthorized`); \
             the answer carries `WWW-Authenticate: Bearer`.",
        ),
        (
            "429",
            "TooManyFailures",
            When::Secured,
            "Too many wrong keys from this client address (`API_AUTH_MAX_FAILURES` within \
             `API_AUTH_FAILURE_WINDOW`; `too_many_failures`): refused, right key or not, \
             until the window ends; `Retry-After` says in how many seconds.",
        ),
        (
            "500",
            "Internal",
            When::Always,
            "Something failed inside (`internal`); the detail is only logged.",
        ),
        (
            "503",
            "Timeout",
            When::Always,
            "The request did not finish within API_REQUEST_TIMEOUT (default 30s); `error` \
             is `timeout`. Work already handed off may still complete.",
        ),
    ];
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, _, description) in Self::RESPONSES {
            components.responses.insert(
                name.into(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build(),
                ),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                for (status, name, when, _) in Self::RESPONSES {
                    let applies = match when {
                        When::HasParameters => has_parameters,
                        When::Secured => secured,
                        When::Always => true,
                    };
                    if applies {
                        operation
                            .responses
                            .responses
                            .entry(status.into())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;
    use utoipa::openapi::RefOr;

    use super::ApiDoc;

    /// Where every operation needs more than a user key.
    const ROLE_LIMITED: [&str; 4] = ["/api/queues", "/api/users", "/api/sync-runs", "/api/admin"];

    #[test]
    fn every_operation_has_an_id_of_its_own() {
        // OpenAPI requires unique ids; tools that link operations (Schemathesis's
        // stateful phase, client generators) mix up two operations sharing one.
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        let mut seen = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let id = op["operationId"].as_str().expect("an operationId");
                if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                    panic!("{method} {path} and {other} share the operationId {id:?}");
                }
            }
        }
    }

    #[test]
    fn every_operation_declares_its_errors_with_the_one_error_schema() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let responses = op["responses"].as_object().expect("responses");
                let mut required = vec!["401", "429", "500", "503"];
                if ROLE_LIMITED.iter().any(|p| path.starts_with(p)) {
                    required.push("403");
                }
                if path.contains('{') {
                    required.extend(["400", "404"]);
                }
                if path.contains("{queue}") {
                    required.push("422");
                }
                for status in required {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not declare {status}"
                    );
                }
                for (status, response) in responses {
                    if !status.starts_with('4') && !status.starts_with('5') {
                        continue;
                    }
                    let schema = match response.get("$ref") {
                        Some(r) => {
                            let name = r.as_str().expect("ref").rsplit('/').next().expect("name");
                            doc["components"]["responses"][name]["content"]["application/json"]["schema"].clone()
                        }
                        None => response["content"]["application/json"]["schema"].clone(),
                    };
                    assert!(
                        is_error_body(&doc, &schema),
                        "{method} {path} {status}: {schema}"
                    );
                }
            }
        }
    }

    /// `ErrorBody`, or a schema made of it and more (`SyncConflict`).
    fn is_error_body(doc: &serde_json::Value, schema: &serde_json::Value) -> bool {
        const ERROR_BODY: &str = "#/components/schemas/ErrorBody";
        let Some(r) = schema["$ref"].as_str() else {
            return false;
        };
        if r == ERROR_BODY {
            return true;
        }
        let name = r.rsplit('/').next().expect("name");
        doc["components"]["schemas"][name]["allOf"]
            .as_array()
            .is_some_and(|parts| parts.iter().any(|p| p["$ref"] == ERROR_BODY))
    }

    #[test]
    fn a_sync_already_active_is_a_409_error_body_with_the_run_id() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        let conflict = &doc["paths"]["/api/users/sync-wispro-all"]["post"]["responses"]["409"];
        let schema = &conflict["content"]["application/json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/SyncConflict");
        assert!(is_error_body(&doc, schema), "{schema}");
        let sync_conflict = doc["components"]["schemas"]["SyncConflict"].to_string();
        assert!(sync_conflict.contains("run_id"), "{sync_conflict}");
        let accepted = &doc["paths"]["/api/users/sync-wispro-all"]["post"]["responses"]["202"];
        assert!(accepted["headers"]["Location"].is_object(), "{accepted}");
    }

    #[test]
    fn the_queue_name_rule_is_declared_wherever_a_queue_is_named() {
        let doc = ApiDoc::openapi();
        let mut seen = 0;
        for (path, item) in &doc.paths.paths {
            let ops = [&item.get, &item.post, &item.delete];
            for op in ops.into_iter().flatten() {
                for p in op.parameters.iter().flatten() {
                    if p.name != "queue" {
                        continue;
                    }
                    let Some(RefOr::T(schema)) = &p.schema else {
                        panic!("{path}: queue has no inline schema")
                    };
                    let schema = serde_json::to_value(schema).expect("schema");
                    assert_eq!(schema["pattern"], "^[A-Za-z0-9._-]{1,100}$", "{path}");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 12);
    }
}
