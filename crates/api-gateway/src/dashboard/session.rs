//! Dashboard sessions: sign-in with a key, a session cookie, CSRF on every
//! form, sign-out.
//!
//! The cookie holds a random token; PostgreSQL holds its SHA-256 with the
//! principal and the session's CSRF token (`store::dashboard_sessions`), so
//! every gateway replica knows every session and a session can be ended
//! server-side. Forms carry the CSRF token in a hidden field, checked with the
//! `Origin` / `Sec-Fetch-Site` headers as a second line (`SameSite=Strict`
//! already keeps the cookie off cross-site requests).

use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::layout::{bare_page, error_page};
use crate::AppState;
use crate::auth::{ClientAddr, Principal, Role, authenticate};
use crate::error::ApiError;

/// `user`, `operator`, `admin`.
pub fn role_name(role: Role) -> &'static str {
    store::keys::Role::from(role).as_str()
}

/// The session cookie's name.
const COOKIE: &str = "rsq_dashboard";
/// Where the cookie is sent: the dashboard only, never the API.
const COOKIE_PATH: &str = "/dashboard";
pub(super) const SIGN_IN: &str = "/dashboard/sign-in";
/// Requests that read data for a page already shown (the live stream, list
/// refreshes) send this header, so they leave the flash message to the page.
pub(super) const FRAGMENT_HEADER: &str = "x-dashboard-fragment";
/// Marks a flash message that reports a refusal or failure.
pub(super) const FLASH_ERROR: &str = "error:";

/// A signed-in operator or admin. As an extractor: a browser without a session
/// is sent to the sign-in page, a `user` key gets a 403 page.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    token_hash: Vec<u8>,
    /// The outcome of the last action, shown once by [`super::page`].
    pub(super) flash: Option<String>,
}

impl Session {
    /// Leaves `message` for the next page this browser loads (after the
    /// redirect that follows a form).
    pub async fn flash(&self, state: &AppState, message: &str) -> Result<(), ApiError> {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        store::dashboard_sessions::set_flash(&mut conn, &self.token_hash, message).await?;
        Ok(())
    }
}

/// The hidden field of every form that POSTs: the session's CSRF token.
pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// Sessions are stored by the SHA-256 of their token, as keys are.
fn sha256(token: &str) -> Vec<u8> {
    store::keys::hash(token).to_vec()
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where to come back after signing in: a dashboard path of this site only.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/dashboard") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/dashboard",
    }
}

fn sign_in_redirect(parts: &Parts) -> Response {
    // Only a page worth coming back to: a GET, not a live stream.
    let next = (parts.method == Method::GET && !parts.headers.contains_key(FRAGMENT_HEADER))
        .then(|| parts.uri.path_and_query().map(|p| p.as_str()))
        .flatten()
        .filter(|p| *p != "/dashboard");
    let location = match next {
        Some(next) => format!("{SIGN_IN}?next={}", urlencode(next)),
        None => SIGN_IN.to_owned(),
    };
    if parts.headers.contains_key(FRAGMENT_HEADER) || parts.uri.path() == super::live::PATH {
        // Script requests: a status the script can act on, not a page.
        return (StatusCode::UNAUTHORIZED, [(header::LOCATION, location)]).into_response();
    }
    Redirect::to(&location).into_response()
}

pub(super) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn forbidden_page(principal: &Principal) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        html! {
            p { "You are signed in as " strong { (principal.actor()) } " with the role "
                strong { (role_name(principal.role)) } ". The dashboard needs an "
                strong { "operator" } " or " strong { "admin" } " key." }
            form method="post" action="/dashboard/sign-out" {
                button type="submit" { "Sign in with another key" }
            }
        },
    )
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(session) = parts.extensions.get::<Session>() {
            return Ok(session.clone());
        }
        let Some(token) = cookie_value(&parts.headers, COOKIE) else {
            return Err(sign_in_redirect(parts));
        };
        let token_hash = sha256(token);
        let found = async {
            let mut conn = state
                .pool
                .acquire()
                .await
                .map_err(store::StoreError::from)?;
            let row = store::dashboard_sessions::find(&mut conn, &token_hash).await?;
            Ok::<_, ApiError>((conn, row))
        };
        let (mut conn, row) = found.await.map_err(error_response)?;
        let Some(row) = row else {
            return Err(sign_in_redirect(parts));
        };
        let Ok(role) = row.role.parse::<store::keys::Role>() else {
            return Err(sign_in_redirect(parts));
        };
        let principal = Principal {
            key_id: row.key_id,
            name: row.name,
            prefix: row.prefix,
            role: role.into(),
        };
        if principal.role < Role::Operator {
            return Err(forbidden_page(&principal));
        }
        // A page shows the flash once; requests for a page already shown leave it.
        let page_load = parts.method == Method::GET
            && !parts.headers.contains_key(FRAGMENT_HEADER)
            && parts.uri.path() != super::live::PATH;
        let flash = match row.flash {
            Some(flash) if page_load => {
                store::dashboard_sessions::clear_flash(&mut conn, &token_hash, &flash)
                    .await
                    .map_err(|e| error_response(e.into()))?;
                Some(flash)
            }
            _ => None,
        };
        let session = Session {
            principal,
            csrf: row.csrf,
            token_hash,
            flash,
        };
        parts.extensions.insert(session.clone());
        Ok(session)
    }
}

/// An error of a dashboard page, as a page: 4xx with its message, 5xx generic.
pub(super) fn error_response(e: ApiError) -> Response {
    let res = e.into_response();
    let status = res.status();
    let detail = res.extensions().get::<crate::error::ErrorDetail>().cloned();
    let message = match (&detail, status.is_client_error()) {
        (Some(d), true) => d.0.clone(),
        _ => "Something went wrong on our side; it was logged. Try again.".into(),
    };
    let title = status.canonical_reason().unwrap_or("Error");
    let mut page = error_page(status, title, html! { p { (message) } });
    if let Some(detail) = detail {
        // For the error log, as for the API's errors.
        page.extensions_mut().insert(detail);
    }
    page
}

/// A form the session posted: the CSRF field matches the session's and the
/// request comes from this site. Extract it last, after `Session`.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

/// Whether the browser says the request comes from this site. Browsers send
/// `Sec-Fetch-Site` (and `Origin` on POSTs); a client without them (curl) is
/// judged by the CSRF token alone.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        if origin == "null" || origin_host.is_none() || origin_host != host {
            return false;
        }
    }
    true
}

fn cross_site_page() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Refused",
        html! { p { "This form was sent from another site." } },
    )
}

/// Largest form body: a key, a CSRF token, a few ids.
const FORM_LIMIT: usize = 16 * 1024;

async fn read_form<T: DeserializeOwned>(parts: &Parts, bytes: &axum::body::Bytes) -> Option<T> {
    let req = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    Form::<T>::from_request(req, &())
        .await
        .ok()
        .map(|Form(v)| v)
}

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers) {
            return Err(cross_site_page());
        }
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| error_response(ApiError::PayloadTooLarge))?;
        let presented = read_form::<CsrfOnly>(&parts, &bytes)
            .await
            .and_then(|c| c.csrf)
            .unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                html! {
                    p { "This form does not belong to your current session (it may be from "
                        "before you signed in again). Go back, reload the page and try again." }
                },
            ));
        }
        match read_form::<T>(&parts, &bytes).await {
            Some(form) => Ok(CsrfForm(form)),
            None => Err(error_response(ApiError::InvalidParameter(
                "the form's fields are not as expected".into(),
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

fn sign_in_form(next: &str, error: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(error) = error {
            p.flash.error role="alert" { (error) }
        }
        form.sign-in method="post" action=(SIGN_IN) {
            input type="hidden" name="next" value=(next);
            label for="key" { "API key" }
            input #key type="password" name="key" required autocomplete="current-password"
                autofocus spellcheck="false";
            p.hint { "An " strong { "operator" } " or " strong { "admin" }
                " key (queuectl keys create, or the admin token)." }
            button type="submit" { "Sign in" }
        }
    }
}

pub(super) async fn sign_in_page(Query(q): Query<NextQuery>) -> Markup {
    bare_page("Sign in", sign_in_form(safe_next(q.next.as_deref()), None))
}

#[derive(Debug, Deserialize)]
pub(super) struct SignInForm {
    key: String,
    next: Option<String>,
}

/// Whether the browser reached us over TLS (directly or through a proxy).
fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.dashboard.secure_cookie
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn session_cookie(value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("a cookie of hex digits is a valid header")
}

pub(super) async fn sign_in(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let Ok(ClientAddr(peer)) = ClientAddr::from_request_parts(&mut parts, &state).await;
    if !same_origin(&parts.headers) {
        return cross_site_page();
    }
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return error_response(ApiError::PayloadTooLarge);
    };
    let Some(form) = read_form::<SignInForm>(&parts, &bytes).await else {
        return error_response(ApiError::validation("key", "the form needs a key"));
    };
    let next = safe_next(form.next.as_deref()).to_owned();
    let refused = |status: StatusCode, message: &str| {
        let mut res = bare_page("Sign in", sign_in_form(&next, Some(message))).into_response();
        *res.status_mut() = status;
        res
    };
    let principal = match authenticate(&state, form.key.trim(), peer).await {
        Ok(p) => p,
        Err(ApiError::Unauthorized) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "This key is wrong, expired or revoked.",
            );
        }
        Err(e @ ApiError::TooManyFailures { .. }) => {
            let mut res = refused(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins from this address; wait a little and try again.",
            );
            if let Some(after) = e.into_response().headers().get(header::RETRY_AFTER) {
                res.headers_mut().insert(header::RETRY_AFTER, after.clone());
            }
            return res;
        }
        Err(e) => return error_response(e),
    };
    if principal.role < Role::Operator {
        return refused(
            StatusCode::FORBIDDEN,
            "This key's role (user) may use the API but not the dashboard; sign in with an \
             operator or admin key.",
        );
    }
    let token = random_token();
    let ttl = state.config.dashboard.session_ttl;
    let created = async {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        store::dashboard_sessions::delete_expired(&mut conn).await?;
        store::dashboard_sessions::create(
            &mut conn,
            store::dashboard_sessions::NewSession {
                token_hash: &sha256(&token),
                key_id: principal.key_id,
                name: &principal.name,
                prefix: &principal.prefix,
                role: role_name(principal.role),
                csrf: &random_token(),
                expires_at: chrono::Utc::now()
                    + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(8)),
            },
        )
        .await?;
        Ok::<_, ApiError>(())
    };
    if let Err(e) = created.await {
        return error_response(e);
    }
    let mut res = Redirect::to(&next).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&token, ttl.as_secs(), over_tls(&state, &parts.headers)),
    );
    res
}

/// Ends the session (also one whose key lost the dashboard role), then the
/// sign-in page. No CSRF field: the worst a forged sign-out does is sign out,
/// and `SameSite=Strict` keeps the cookie off cross-site posts anyway.
pub(super) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site_page();
    }
    if let Some(token) = cookie_value(&headers, COOKIE) {
        let deleted = async {
            let mut conn = state
                .pool
                .acquire()
                .await
                .map_err(store::StoreError::from)?;
            store::dashboard_sessions::delete(&mut conn, &sha256(token)).await?;
            Ok::<_, ApiError>(())
        };
        if let Err(e) = deleted.await {
            return error_response(e);
        }
    }
    let mut res = Redirect::to(SIGN_IN).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, over_tls(&state, &headers)),
    );
    res
}
