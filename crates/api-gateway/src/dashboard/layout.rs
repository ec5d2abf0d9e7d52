//! The dashboard's layout: every page's head, navigation, flash message and
//! footer, and the embedded assets it links.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::{FLASH_ERROR, Session, csrf_field, role_name};

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// The navigation, in order: (label, path). A section adds its line here.
const NAV: &[(&str, &str)] = &[
    ("Overview", "/dashboard"),
    ("Workloads", "/dashboard/workloads"),
    ("Audit log", "/dashboard/audit"),
];

/// A short hash of the assets in their URLs: browsers may cache them for a
/// year, and a new build links new URLs.
static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    // FNV-1a: stable across builds and processes, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in CSS.bytes().chain(JS.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", h >> 32)
});

pub(super) async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub(super) async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

fn head(title: &str) -> Markup {
    let v = ASSET_VERSION.as_str();
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " · rsq dashboard" }
            link rel="stylesheet" href={ "/dashboard/assets/dashboard.css?v=" (v) };
            script defer src={ "/dashboard/assets/dashboard.js?v=" (v) } {}
        }
    }
}

/// A page of a signed-in operator: navigation, who is signed in with the
/// sign-out, the flash message of the last action, then `body`.
pub fn page(title: &str, who: &Session, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/dashboard" { "rsq" }
                    nav aria-label="Sections" {
                        ul {
                            @for (label, path) in NAV {
                                li { a href=(path) { (label) } }
                            }
                        }
                    }
                    form.who method="post" action="/dashboard/sign-out" {
                        span { (who.principal.actor()) " · " (role_name(who.principal.role)) }
                        (csrf_field(who))
                        button.link type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" {
                    @if let Some(flash) = &who.flash {
                        @if let Some(error) = flash.strip_prefix(FLASH_ERROR) {
                            p.flash.error role="alert" { (error) }
                        } @else {
                            p.flash role="status" { (flash) }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

/// A page without a session: sign-in and errors.
pub(super) fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                header.top { a.brand href="/dashboard" { "rsq" } }
                main #main { (body) }
            }
        }
    }
}

/// An error as a page with `status`.
pub(super) fn error_page(status: StatusCode, title: &str, body: Markup) -> Response {
    let page = bare_page(
        title,
        html! {
            h1 { (title) }
            (body)
            p { a href="/dashboard" { "Back to the overview" } }
        },
    );
    (status, page).into_response()
}
