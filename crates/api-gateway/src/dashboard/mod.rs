//! The operators' web dashboard at `/dashboard`: server-rendered pages (maud)
//! with a little JavaScript, assets embedded in the binary.
//!
//! Every page needs a session of an `operator` or `admin` key ([`Session`]);
//! every form posts the session's CSRF token ([`csrf_field`], checked by
//! [`CsrfForm`]). Queue actions go through `crate::actions`, the same audited
//! code as the admin API. Live counts come from one shared sampler per
//! process (`live`), whatever the number of open browsers.

mod audit;
mod charts;
mod format;
mod layout;
mod live;
mod overview;
mod queues;
mod session;
mod workloads;

use axum::Router;
use axum::routing::{get, post};

pub use layout::page;
pub use session::{CsrfForm, Session, csrf_field};

use crate::AppState;

/// The dashboard's routes, merged into [`crate::router`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(overview::page))
        .route(
            session::SIGN_IN,
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/dashboard/sign-out", post(session::sign_out))
        .route("/dashboard/assets/dashboard.css", get(layout::css))
        .route("/dashboard/assets/dashboard.js", get(layout::js))
        .route("/dashboard/queues/{queue}", get(queues::page))
        .route("/dashboard/queues/{queue}/confirm", get(queues::confirm))
        .route(
            "/dashboard/queues/{queue}/{action}",
            post(queues::queue_action),
        )
        .route("/dashboard/queues/{queue}/jobs/{id}", get(queues::job_page))
        .route(
            "/dashboard/queues/{queue}/jobs/{id}/{action}",
            post(queues::job_action),
        )
        .route("/dashboard/audit", get(audit::page))
        .route(live::PATH, get(live::stream))
        .merge(workloads::router())
        .layer(axum::Extension(live::Live::default()))
}
