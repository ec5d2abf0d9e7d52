//! Bearer-token roles. Tokens come from configuration and are compared in constant
//! time; they are never logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

/// Any valid token: a user or an admin.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Role);

/// An admin token; a user token is 403.
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller;

fn role_of(parts: &Parts, state: &AppState) -> Result<Role, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let matches = |expected: &str| bool::from(token.as_bytes().ct_eq(expected.as_bytes()));
    // Both comparisons always run, so timing does not tell which role matched.
    let admin = matches(state.config.admin_token.expose());
    let user = matches(state.config.user_token.expose());
    match (admin, user) {
        (true, _) => Ok(Role::Admin),
        (false, true) => Ok(Role::User),
        _ => Err(ApiError::Unauthorized),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        role_of(parts, state).map(Caller)
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match role_of(parts, state)? {
            Role::Admin => Ok(AdminCaller),
            Role::User => Err(ApiError::Forbidden),
        }
    }
}
