//! How a bank's payment notification proves it comes from the bank: a secret
//! shared with it (`BANK_NOTIFY_SECRET`), never an API key (docs/design.md,
//! "Notification, then check").
//!
//! Either an HMAC-SHA256 of the timestamp and the body, `X-Timestamp: UNIX_SECONDS`
//! and `X-Signature: sha256=HEX` over `"{timestamp}.{body}"` (the timestamp is
//! signed too, and one further than `BANK_NOTIFY_MAX_AGE` from our clock is
//! refused, so a captured notification cannot be replayed later); or, for a
//! bank that can only send a fixed header, the secret itself in
//! `X-Notify-Secret`. Every comparison is constant-time. Even a replay within
//! the window only asks for one more reading of the bank: the notification is
//! never taken as the payment's status.

use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// `sha256=` and the hex HMAC-SHA256 of `"{X-Timestamp}.{body}"`.
pub const SIGNATURE_HEADER: &str = "x-signature";
/// Unix seconds when the bank signed the notification.
pub const TIMESTAMP_HEADER: &str = "x-timestamp";
/// The shared secret itself, for a bank that cannot sign.
pub const SECRET_HEADER: &str = "x-notify-secret";

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts` under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // Any key length is valid for HMAC: `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `X-Signature` value a bank sends for `body` signed at `timestamp`
/// (Unix seconds) with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = hmac_sha256(
        secret.as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body],
    );
    format!("sha256={}", hex(&mac))
}

/// Why a notification was refused; the message says what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Neither a signature nor the secret header.
    Missing,
    /// `X-Signature` without a usable `X-Timestamp`.
    BadTimestamp,
    /// Signed further from now than the allowed age, in seconds.
    Stale { age_s: u64 },
    /// The signature or the secret does not match.
    Mismatch,
}

impl Refusal {
    pub fn message(&self, max_age: Duration) -> String {
        match self {
            Self::Missing => format!(
                "send {SIGNATURE_HEADER}: sha256=HEX (HMAC-SHA256 of \"{{{TIMESTAMP_HEADER}}}.{{body}}\" \
                 under the shared secret) with {TIMESTAMP_HEADER}, or {SECRET_HEADER}"
            ),
            Self::BadTimestamp => {
                format!(
                    "{TIMESTAMP_HEADER} must be the Unix time in seconds the body was signed at"
                )
            }
            Self::Stale { age_s } => format!(
                "{TIMESTAMP_HEADER} is {age_s}s away from now; at most {}s is accepted",
                max_age.as_secs()
            ),
            Self::Mismatch => "the signature or the secret does not match".into(),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Checks a notification's headers against `secret`, `now` being our clock in
/// Unix seconds.
pub fn verify(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    max_age: Duration,
) -> Result<(), Refusal> {
    if let Some(signature) = header(headers, SIGNATURE_HEADER) {
        let timestamp = header(headers, TIMESTAMP_HEADER).ok_or(Refusal::BadTimestamp)?;
        let at: i64 = timestamp.parse().map_err(|_| Refusal::BadTimestamp)?;
        let age_s = now.abs_diff(at);
        if age_s > max_age.as_secs() {
            return Err(Refusal::Stale { age_s });
        }
        let expected = sign(secret.expose(), at, body);
        let given = signature.to_ascii_lowercase();
        let given = if given.starts_with("sha256=") {
            given
        } else {
            format!("sha256={given}")
        };
        return if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(Refusal::Mismatch)
        };
    }
    match header(headers, SECRET_HEADER) {
        Some(given) if bool::from(given.as_bytes().ct_eq(secret.expose().as_bytes())) => Ok(()),
        Some(_) => Err(Refusal::Mismatch),
        None => Err(Refusal::Missing),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const MAX_AGE: Duration = Duration::from_secs(300);

    #[test]
    fn the_mac_is_rfc_4231s_hmac_sha256() {
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_str(value).expect("ascii"));
        }
        h
    }

    #[test]
    fn a_signature_of_this_body_at_a_recent_time_passes_and_anything_else_is_refused() {
        let secret = Secret::new("a-shared-secret-of-the-bank");
        let body = br#"{"QRId":"qr-1"}"#;
        let now = 1_760_000_000;
        let signed = |at: i64, body: &[u8]| {
            headers(&[
                (TIMESTAMP_HEADER, at.to_string()),
                (SIGNATURE_HEADER, sign(secret.expose(), at, body)),
            ])
        };
        assert_eq!(
            verify(&secret, &signed(now - 10, body), body, now, MAX_AGE),
            Ok(())
        );
        // Upper-case hex and a bare hex digest are the same signature.
        let mut upper = signed(now, body);
        let bare = sign(secret.expose(), now, body)[7..].to_ascii_uppercase();
        upper.insert(SIGNATURE_HEADER, HeaderValue::from_str(&bare).expect("hex"));
        assert_eq!(verify(&secret, &upper, body, now, MAX_AGE), Ok(()));

        let other_body = br#"{"QRId":"qr-2"}"#;
        assert_eq!(
            verify(&secret, &signed(now, body), other_body, now, MAX_AGE),
            Err(Refusal::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        let mut moved = signed(now - 1000, body);
        moved.insert(TIMESTAMP_HEADER, HeaderValue::from(now));
        assert_eq!(
            verify(&secret, &moved, body, now, MAX_AGE),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(&secret, &signed(now - 301, body), body, now, MAX_AGE),
            Err(Refusal::Stale { age_s: 301 })
        );
        assert_eq!(
            verify(&secret, &signed(now + 301, body), body, now, MAX_AGE),
            Err(Refusal::Stale { age_s: 301 })
        );
        let no_time = headers(&[(SIGNATURE_HEADER, sign(secret.expose(), now, body))]);
        assert_eq!(
            verify(&secret, &no_time, body, now, MAX_AGE),
            Err(Refusal::BadTimestamp)
        );
        let wrong_key = headers(&[
            (TIMESTAMP_HEADER, now.to_string()),
            (SIGNATURE_HEADER, sign("another-secret-entirely", now, body)),
        ]);
        assert_eq!(
            verify(&secret, &wrong_key, body, now, MAX_AGE),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn the_secret_header_passes_only_with_the_secret() {
        let secret = Secret::new("a-shared-secret-of-the-bank");
        let body = b"{}";
        let with = |v: &str| headers(&[(SECRET_HEADER, v.to_owned())]);
        assert_eq!(
            verify(
                &secret,
                &with("a-shared-secret-of-the-bank"),
                body,
                0,
                MAX_AGE
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &secret,
                &with("a-shared-secret-of-the-ban"),
                body,
                0,
                MAX_AGE
            ),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(&secret, &HeaderMap::new(), body, 0, MAX_AGE),
            Err(Refusal::Missing)
        );
    }
}
