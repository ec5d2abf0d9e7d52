//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

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
    modifiers(&BearerAuth),
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
