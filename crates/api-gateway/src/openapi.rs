//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use crate::error::ErrorBody;
use crate::routes::{persons, queues};

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
        queues::list,
        queues::failed,
        queues::retry,
        queues::retry_all,
        queues::flush,
        queues::delete,
        queues::pause,
        queues::resume,
    ),
    components(schemas(
        ErrorBody,
        persons::CreatePerson,
        persons::PersonResponse,
        persons::QrNotReady,
        queues::QueueStatsResponse,
        queues::DeadLetterResponse,
        queues::DeadLetterPage,
        queues::Retried,
        queues::Count,
        queues::Paused,
    )),
    modifiers(&BearerAuth, &RequestTimeout),
    tags(
        (name = "persons", description = "Registration and QR codes (user or admin token)"),
        (name = "queues", description = "Queue operations (admin token)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every operation may answer 503 `timeout` (`API_REQUEST_TIMEOUT`): one shared
/// `Timeout` response, referenced wherever an operation documents no 503 of its own.
struct RequestTimeout;

impl Modify for RequestTimeout {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert(
            "Timeout".into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(
                        "The request did not finish within API_REQUEST_TIMEOUT (default 30s); \
                         `error` is `timeout`. Work already handed off may still complete.",
                    )
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("503".into())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Timeout")));
            }
        }
    }
}
