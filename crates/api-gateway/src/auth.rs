//! Who is calling: API keys (`store::keys`) and the two bootstrap tokens
//! (`API_ADMIN_TOKEN`, `API_USER_TOKEN`), each with a role, and the extractors
//! that require one. Keys and tokens are compared in constant time and never
//! logged.
//!
//! A verified key is cached in memory for `API_KEY_CACHE_TTL` (15 s), so the
//! hot domain API does not ask PostgreSQL on every request; a revoked or
//! expired key therefore keeps working for at most that long on a replica
//! that had just verified it (at once on the replica that revoked it). Wrong
//! keys are counted per client address: after `API_AUTH_MAX_FAILURES` within
//! `API_AUTH_FAILURE_WINDOW`, that address is answered 429 with `Retry-After`
//! until the window ends, right key or not.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::config::AuthConfig;
use crate::error::ApiError;

/// What a caller may do: `user` the domain API; `operator` also the dashboard
/// and the queue actions; `admin` everything, key management included. Ordered
/// by power.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Operator,
    Admin,
}

impl From<store::keys::Role> for Role {
    fn from(r: store::keys::Role) -> Self {
        match r {
            store::keys::Role::User => Role::User,
            store::keys::Role::Operator => Role::Operator,
            store::keys::Role::Admin => Role::Admin,
        }
    }
}

impl From<Role> for store::keys::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::User => store::keys::Role::User,
            Role::Operator => store::keys::Role::Operator,
            Role::Admin => store::keys::Role::Admin,
        }
    }
}

/// A caller whose key checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The stored key; None for a bootstrap token.
    pub key_id: Option<i64>,
    /// The key's name (`ops-alice`), `bootstrap-admin` or `bootstrap-user`.
    pub name: String,
    /// `rsq_ab12cd34`, or the variable of a bootstrap token (`API_ADMIN_TOKEN`).
    pub prefix: String,
    pub role: Role,
}

impl Principal {
    /// How the audit log names the caller: `ops-alice (rsq_ab12cd34)`.
    pub fn actor(&self) -> String {
        format!("{} ({})", self.name, self.prefix)
    }

    /// The caller's actions, recorded in the audit log.
    pub fn auditor(&self, state: &AppState) -> ops::Auditor {
        ops::Auditor::new(state.pool.clone(), self.actor())
    }

    fn bootstrap(role: Role) -> Self {
        let (name, prefix) = match role {
            Role::Admin => ("bootstrap-admin", "API_ADMIN_TOKEN"),
            _ => ("bootstrap-user", "API_USER_TOKEN"),
        };
        Self {
            key_id: None,
            name: name.into(),
            prefix: prefix.into(),
            role,
        }
    }
}

/// Most verified keys cached, and most client addresses whose failures are
/// counted: bounds the memory a flood of keys or addresses can take.
const MAX_ENTRIES: usize = 10_000;
/// `last_used_at` is written at most this often per key by one replica (and
/// the store's guard makes it about this often across replicas).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The gateway's memory of keys: verified keys (by hash), when each key's
/// `last_used_at` was last written, and recent failures per client address.
#[derive(Debug)]
pub struct Keyring {
    config: AuthConfig,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    touched: Mutex<HashMap<i64, Instant>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
    at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

impl Keyring {
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config,
            verified: Mutex::default(),
            touched: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Drops the cached verification of key `id` (revoked here).
    pub fn forget(&self, id: i64) {
        lock(&self.verified).retain(|_, v| v.principal.key_id != Some(id));
    }

    /// 429 while `addr` has used up its failures in the current window.
    pub(crate) fn check_allowed(&self, addr: IpAddr, now: Instant) -> Result<(), ApiError> {
        let failures = lock(&self.failures);
        match failures.get(&addr) {
            Some(f) if f.count >= self.config.max_failures.get() => {
                let left = self
                    .config
                    .failure_window
                    .saturating_sub(now.duration_since(f.since));
                if left.is_zero() {
                    Ok(())
                } else {
                    Err(ApiError::TooManyFailures { retry_after: left })
                }
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn record_failure(&self, addr: IpAddr, now: Instant) {
        let window = self.config.failure_window;
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_ENTRIES && !failures.contains_key(&addr) {
            failures.retain(|_, f| now.duration_since(f.since) < window);
            if failures.len() >= MAX_ENTRIES {
                // Under a flood of addresses, forget the oldest window to make room.
                if let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(a, _)| *a)
                {
                    failures.remove(&oldest);
                }
            }
        }
        let f = failures.entry(addr).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now.duration_since(f.since) >= window {
            *f = Failures {
                since: now,
                count: 0,
            };
        }
        f.count = f.count.saturating_add(1);
    }

    fn cached(&self, hash: &[u8; 32], now: Instant) -> Option<Verified> {
        let verified = lock(&self.verified);
        verified
            .get(hash)
            .filter(|v| now.duration_since(v.at) < self.config.key_cache_ttl)
            .cloned()
    }

    fn remember(&self, hash: [u8; 32], v: Verified) {
        let ttl = self.config.key_cache_ttl;
        let mut verified = lock(&self.verified);
        if verified.len() >= MAX_ENTRIES {
            let now = Instant::now();
            verified.retain(|_, v| now.duration_since(v.at) < ttl);
            if verified.len() >= MAX_ENTRIES {
                verified.clear();
            }
        }
        verified.insert(hash, v);
    }

    /// Whether key `id`'s `last_used_at` is due a write; if so, counts it done.
    fn due_touch(&self, id: i64, now: Instant) -> bool {
        let mut touched = lock(&self.touched);
        if touched
            .get(&id)
            .is_some_and(|at| now.duration_since(*at) < TOUCH_EVERY)
        {
            return false;
        }
        if touched.len() >= MAX_ENTRIES {
            touched.retain(|_, at| now.duration_since(*at) < TOUCH_EVERY);
        }
        touched.insert(id, now);
        true
    }
}

/// A poisoned lock only means a panic elsewhere while it was held; the maps
/// stay consistent (every update is one insert or remove), so keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checks a presented key (API key or bootstrap token); 401 when wrong,
/// expired or revoked; slows down repeated failures from one address (429 +
/// Retry-After when too many). Updates last_used_at (throttled).
pub async fn authenticate(
    state: &AppState,
    presented: &str,
    peer: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    let keyring = &state.keyring;
    let now = Instant::now();
    if let Some(addr) = peer {
        keyring.check_allowed(addr, now)?;
    }
    match verify(state, presented, now).await? {
        Some(principal) => Ok(principal),
        None => {
            if let Some(addr) = peer {
                keyring.record_failure(addr, now);
            }
            Err(ApiError::Unauthorized)
        }
    }
}

async fn verify(
    state: &AppState,
    presented: &str,
    now: Instant,
) -> Result<Option<Principal>, ApiError> {
    let matches = |expected: &str| bool::from(presented.as_bytes().ct_eq(expected.as_bytes()));
    // Both comparisons always run, so timing does not tell which one matched.
    let admin = matches(state.config.admin_token.expose());
    let user = matches(state.config.user_token.expose());
    if admin {
        return Ok(Some(Principal::bootstrap(Role::Admin)));
    }
    if user {
        return Ok(Some(Principal::bootstrap(Role::User)));
    }
    if store::keys::prefix_of(presented).is_none() {
        return Ok(None);
    }
    let keyring = &state.keyring;
    let hash = store::keys::hash(presented);
    let verified = match keyring.cached(&hash, now) {
        Some(v) => v,
        None => {
            let found = async {
                let mut conn = state.pool.acquire().await?;
                store::keys::find(&mut conn, presented).await
            }
            .await
            .map_err(|e| ApiError::Unavailable {
                what: "the key store".into(),
                source: e.into(),
            })?;
            let Some(key) = found.filter(|k| k.is_usable(Utc::now())) else {
                return Ok(None);
            };
            let v = Verified {
                principal: Principal {
                    key_id: Some(key.id),
                    name: key.name,
                    prefix: key.prefix,
                    role: key.role.into(),
                },
                expires_at: key.expires_at,
                at: now,
            };
            keyring.remember(hash, v.clone());
            v
        }
    };
    if expired(&verified, Utc::now()) {
        return Ok(None);
    }
    if let Some(id) = verified.principal.key_id
        && keyring.due_touch(id, now)
    {
        let pool = state.pool.clone();
        // Off the request: `last_used_at` is informative, not worth its latency.
        tokio::spawn(async move {
            let touched = async {
                let mut conn = pool.acquire().await?;
                store::keys::touch(&mut conn, id).await
            }
            .await;
            if let Err(e) = touched {
                tracing::warn!(key.id = id, error = %e, "could not update the key's last_used_at");
            }
        });
    }
    Ok(Some(verified.principal))
}

fn expired(v: &Verified, now: DateTime<Utc>) -> bool {
    v.expires_at.is_some_and(|at| at <= now)
}

/// The client's address: the peer of the connection, or with
/// `API_TRUST_FORWARDED_FOR` the last `X-Forwarded-For` entry (the one the
/// proxy in front of us added; earlier ones are the client's to invent).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts, &state.config.auth)))
    }
}

fn client_addr(parts: &Parts, config: &AuthConfig) -> Option<IpAddr> {
    if config.trust_forwarded_for {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The principal of the request's `Authorization: Bearer` key.
async fn principal_of(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
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
    authenticate(state, token, client_addr(parts, &state.config.auth)).await
}

/// Any valid key or token: user, operator or admin.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// An operator or admin; a user is 403.
#[derive(Debug, Clone)]
pub struct OperatorCaller(pub Principal);

/// An admin; anyone else is 403.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Principal);

async fn at_least(parts: &Parts, state: &AppState, role: Role) -> Result<Principal, ApiError> {
    let p = principal_of(parts, state).await?;
    if p.role >= role {
        Ok(p)
    } else {
        Err(ApiError::Forbidden)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        at_least(parts, state, Role::User).await.map(Caller)
    }
}

impl FromRequestParts<AppState> for OperatorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        at_least(parts, state, Role::Operator)
            .await
            .map(OperatorCaller)
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        at_least(parts, state, Role::Admin).await.map(AdminCaller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(max_failures: u32, window: Duration) -> Keyring {
        Keyring::new(AuthConfig {
            max_failures: max_failures.try_into().expect("nonzero"),
            failure_window: window,
            ..AuthConfig::default()
        })
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let k = keyring(3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(k.check_allowed(a, t0).is_ok());
            k.record_failure(a, t0);
        }
        match k.check_allowed(a, t0 + Duration::from_secs(20)) {
            Err(ApiError::TooManyFailures { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(40));
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            k.check_allowed(b, t0).is_ok(),
            "another address is not slowed"
        );
        assert!(k.check_allowed(a, t0 + Duration::from_secs(60)).is_ok());
        k.record_failure(a, t0 + Duration::from_secs(61));
        assert!(
            k.check_allowed(a, t0 + Duration::from_secs(61)).is_ok(),
            "a new window counts from zero"
        );
    }

    #[test]
    fn failures_are_counted_for_a_bounded_number_of_addresses() {
        let k = keyring(1, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            k.record_failure(
                IpAddr::from(i.to_be_bytes()),
                t0 + Duration::from_millis(i.into()),
            );
        }
        assert_eq!(lock(&k.failures).len(), MAX_ENTRIES);
    }

    #[test]
    fn last_used_at_is_due_once_a_minute_per_key() {
        let k = keyring(1, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(k.due_touch(1, t0));
        assert!(!k.due_touch(1, t0 + Duration::from_secs(59)));
        assert!(k.due_touch(2, t0));
        assert!(k.due_touch(1, t0 + TOUCH_EVERY));
    }

    #[test]
    fn the_roles_order_by_power_and_match_the_stores() {
        assert!(Role::User < Role::Operator && Role::Operator < Role::Admin);
        for r in store::keys::Role::ALL {
            assert_eq!(store::keys::Role::from(Role::from(r)), r);
        }
    }
}
