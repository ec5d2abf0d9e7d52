//! Pages of the lists (`routes::lists`): `limit`, an opaque `cursor`, and the
//! answer `{"items": [...], "next_cursor": "..." | null}`.
//!
//! A cursor is the id of the last row of the page it came from (the lists are
//! keyset pages on id, `store::lists`), with a check over that id, the list and
//! its filters. A cursor cut short, edited, or used with another list or other
//! filters is refused (400 naming `cursor`) rather than read as some other
//! position. The check is not a secret: a forged cursor would only start a page
//! at another row the caller may list anyway.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::lists::Keyset;

use crate::error::ApiError;

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// Most rows per page.
pub const MAX_LIMIT: i64 = 200;

/// The paging parameters every list takes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, example = 50, nullable = false)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page, as it was, with the same
    /// filters. Absent: the first page.
    #[param(
        pattern = "^[A-Za-z0-9_-]{23}$",
        example = "AQAAAAAAAAAqm5V9cE1XRAo",
        nullable = false
    )]
    pub cursor: Option<String>,
}

/// A page of a list.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// In the list's order.
    pub items: Vec<T>,
    /// Pass as `cursor` (with the same filters) for the next page; null on
    /// the last one.
    pub next_cursor: Option<String>,
}

/// A list read with its filters: what its cursors are checked against.
#[derive(Debug)]
pub struct Listing {
    /// `persons?qr_status=ready`: the list and the filters given, in a fixed
    /// order, values as they were read.
    key: String,
    limit: i64,
    after: Option<i64>,
}

const CURSOR_VERSION: u8 = 1;
const CHECK_LEN: usize = 8;
const CURSOR_LEN: usize = 1 + 8 + CHECK_LEN;

impl Listing {
    /// The page `query` asks for of list `name` with `filters` (name and
    /// value of each filter given, always in the same order): its limit in
    /// range, its cursor one of this list with these filters; else 400
    /// naming the parameter.
    pub fn new(name: &str, filters: &[(&str, &str)], query: &PageQuery) -> Result<Self, ApiError> {
        let mut key = name.to_owned();
        for (i, (filter, value)) in filters.iter().enumerate() {
            key.push(if i == 0 { '?' } else { '&' });
            key.push_str(filter);
            key.push('=');
            key.push_str(value);
        }
        let limit = match query.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::parameter(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let mut listing = Self {
            key,
            limit,
            after: None,
        };
        if let Some(cursor) = query.cursor.as_deref() {
            listing.after = Some(listing.read_cursor(cursor)?);
        }
        Ok(listing)
    }

    /// What to read: one row more than the page, which tells whether a next
    /// page exists.
    pub fn keyset(&self) -> Keyset {
        Keyset {
            after: self.after,
            limit: self.limit + 1,
        }
    }

    /// The page of `rows` (as read with [`Self::keyset`]): at most `limit`
    /// items, and a cursor after the last one when more rows followed.
    pub fn page<R, T>(
        &self,
        mut rows: Vec<R>,
        id: impl Fn(&R) -> i64,
        item: impl FnMut(R) -> T,
    ) -> Page<T> {
        let limit = usize::try_from(self.limit).expect("a limit is positive");
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| self.cursor(id(last)))
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(item).collect(),
            next_cursor,
        }
    }

    fn check(&self, id: i64) -> [u8; CHECK_LEN] {
        let digest = Sha256::new()
            .chain_update(b"rsq list cursor\n")
            .chain_update(self.key.as_bytes())
            .chain_update(b"\n")
            .chain_update(id.to_be_bytes())
            .finalize();
        let mut check = [0; CHECK_LEN];
        check.copy_from_slice(&digest[..CHECK_LEN]);
        check
    }

    fn cursor(&self, id: i64) -> String {
        let mut bytes = Vec::with_capacity(CURSOR_LEN);
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&self.check(id));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn read_cursor(&self, cursor: &str) -> Result<i64, ApiError> {
        let malformed = || {
            ApiError::parameter(
                "cursor",
                "is not a cursor: pass a page's `next_cursor` as it was",
            )
        };
        // Checked before decoding, so that a long one costs nothing.
        if cursor.len() > 4 * CURSOR_LEN {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| malformed())?;
        if bytes.len() != CURSOR_LEN || bytes[0] != CURSOR_VERSION {
            return Err(malformed());
        }
        let id = i64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
        if bytes[9..] != self.check(id) {
            return Err(ApiError::parameter(
                "cursor",
                "is not a cursor of this list with these filters (or was altered): \
                 pass the `next_cursor` of the previous page with the same filters",
            ));
        }
        Ok(id)
    }
}

/// `raw`, when given, as one of the names `T` (a documented enum) takes;
/// else 400 naming `field` with those names.
pub fn enum_filter<T: DeserializeOwned + utoipa::PartialSchema>(
    field: &str,
    raw: Option<&str>,
) -> Result<Option<T>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map(Some)
        .map_err(|_| not_one_of::<T>(field))
}

/// 400 naming `field`: not one of the names schema `S` lists.
pub fn not_one_of<S: utoipa::PartialSchema>(field: &str) -> ApiError {
    let schema = serde_json::to_value(S::schema()).unwrap_or_default();
    let names: Vec<&str> = schema["enum"]
        .as_array()
        .map(|names| names.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    ApiError::parameter(field, format!("must be one of {}", names.join(", ")))
}

/// `raw`, when given, as `true` or `false`; else 400 naming `field`.
pub fn bool_filter(field: &str, raw: Option<&str>) -> Result<Option<bool>, ApiError> {
    match raw {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::parameter(field, "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<&str>, cursor: Option<&str>) -> PageQuery {
        PageQuery {
            limit: limit.map(Into::into),
            cursor: cursor.map(Into::into),
        }
    }

    fn field_of(r: Result<Listing, ApiError>) -> String {
        match r {
            Err(ApiError::ParameterRule { field, .. }) => field,
            other => panic!("expected a parameter error, got {other:?}"),
        }
    }

    #[test]
    fn a_cursor_reads_back_only_with_its_list_and_filters() {
        let ready = [("qr_status", "ready")];
        let first = Listing::new("persons", &ready, &PageQuery::default()).expect("valid");
        let cursor = first.cursor(42);
        assert_eq!(cursor.len(), 23, "{cursor}");
        let next = Listing::new("persons", &ready, &query(None, Some(&cursor))).expect("valid");
        assert_eq!(next.keyset().after, Some(42));

        let other_filter = [("qr_status", "failed")];
        for (name, filters) in [
            ("persons", &other_filter[..]),
            ("companies", &ready[..]),
            ("persons", &[][..]),
        ] {
            assert_eq!(
                field_of(Listing::new(name, filters, &query(None, Some(&cursor)))),
                "cursor"
            );
        }
    }

    #[test]
    fn an_altered_or_malformed_cursor_names_the_cursor() {
        let listing = Listing::new("companies", &[], &PageQuery::default()).expect("valid");
        let cursor = listing.cursor(7);
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).expect("base64");
        bytes[8] ^= 1; // id 7 becomes 6, the check unchanged
        let edited = URL_SAFE_NO_PAD.encode(&bytes);
        for bad in [
            edited.as_str(),
            &cursor[..22],
            "not a cursor",
            "",
            &"A".repeat(5000),
        ] {
            assert_eq!(
                field_of(Listing::new("companies", &[], &query(None, Some(bad)))),
                "cursor",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_limit_is_one_to_two_hundred_and_fifty_by_default() {
        let limit = |raw| Listing::new("users", &[], &query(raw, None));
        assert_eq!(
            limit(None).expect("valid").keyset().limit,
            DEFAULT_LIMIT + 1
        );
        assert_eq!(limit(Some("200")).expect("valid").keyset().limit, 201);
        assert_eq!(limit(Some("1")).expect("valid").keyset().limit, 2);
        for bad in ["0", "201", "-1", "x", "", "1.5"] {
            assert_eq!(field_of(limit(Some(bad))), "limit", "{bad}");
        }
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_follow() {
        let listing = Listing::new("users", &[], &query(Some("2"), None)).expect("valid");
        let page = listing.page(vec![9, 8, 7], |id| *id, |id| id);
        assert_eq!(page.items, [9, 8]);
        let next = Listing::new("users", &[], &query(Some("2"), page.next_cursor.as_deref()))
            .expect("the cursor reads back");
        assert_eq!(next.keyset().after, Some(8));
        let last = listing.page(vec![7], |id| *id, |id| id);
        assert_eq!((last.items, last.next_cursor), (vec![7], None));
    }
}
