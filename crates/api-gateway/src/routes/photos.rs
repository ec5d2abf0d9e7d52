//! Race photos: bulk upload, processing status, batches, search by bib and
//! the originals as uploaded.
//!
//! `POST /api/photos` stores each file (multipart parts named `files`, or
//! `file` for a client that sends one; the two names may mix) or each
//! URL (JSON `{"urls": [...]}`), creates the photo rows `pending` in one batch,
//! enqueues one `photo.process` job per photo and answers 202 at once; the
//! photo-worker makes the thumbnail and finds the bibs later. Files are checked
//! as they stream in: JPEG or PNG by their bytes (else 415), at most
//! `PHOTO_MAX_FILE_BYTES` each and `PHOTO_MAX_REQUEST_BYTES` together (else
//! 413). A URL is checked up front for its syntax, scheme and host
//! (`PHOTO_FETCH_ALLOWED_HOSTS`, else 422 naming `urls[i]`); the worker fetches
//! it later, checking every address and redirect.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::photos::{self, Photo, ProcessingStatus};
use tracing::{Instrument, info, warn};

use crate::AppState;
use crate::auth::Caller;
use crate::config::Config;
use crate::error::{ApiError, ErrorBody};
use crate::params::{ApiPath, ApiQuery};

/// Longest bib searched for, in digits.
pub const MAX_BIB_DIGITS: usize = 8;
/// Photos per search answer, by default and at most.
pub const DEFAULT_SEARCH_LIMIT: u32 = 50;
pub const MAX_SEARCH_LIMIT: u32 = 500;

/// `POST /api/photos`, `GET /api/photos?bib=`, `GET /api/photos/{id}`,
/// `GET /api/photos/{id}/status`, `GET /api/photos/{id}/thumbnail`,
/// `GET /api/photos/{id}/original`, `GET /api/photo-batches/{id}`.
pub fn router(config: &Config) -> Router<AppState> {
    // Uploads take their own body limit; every other route keeps API_BODY_LIMIT_BYTES.
    let upload_limit = config.photos.max_request_bytes.get();
    Router::new()
        .route(
            "/api/photos",
            post(upload)
                .layer(DefaultBodyLimit::max(upload_limit))
                .get(search),
        )
        .route("/api/photos/{id}", routing::get(get))
        .route("/api/photos/{id}/status", routing::get(status))
        .route("/api/photos/{id}/thumbnail", routing::get(thumbnail))
        .route("/api/photos/{id}/original", routing::get(original))
        .route("/api/photo-batches/{id}", routing::get(batch))
}

/// Photos given by URL instead of uploaded (the schema; the body is read by
/// `read_urls`, which stops one URL past `PHOTO_MAX_FILES`). At most
/// `API_BODY_LIMIT_BYTES`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhotoUrls {
    /// 1 to `PHOTO_MAX_FILES` (default 100) `http`/`https` URLs without
    /// credentials, on a host of `PHOTO_FETCH_ALLOWED_HOSTS`.
    #[schema(example = json!(["https://photos.example.com/race/0001.jpg"]))]
    pub urls: Vec<String>,
}

/// The multipart form of an upload (documentation only: parsed as a stream).
/// `file` and `files` parts are read alike, in the order sent, and may be
/// mixed; at least one photo, at most `PHOTO_MAX_FILES` in all. Parts of other
/// names are refused (422 naming the part).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PhotoFiles {
    /// One or many JPEG or PNG files, each a part named `files`.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    pub files: Option<Vec<Vec<u8>>>,
    /// A single JPEG or PNG file: the form of clients that send one photo.
    #[schema(value_type = Option<String>, format = Binary)]
    pub file: Option<Vec<u8>>,
}

/// An accepted upload: the batch to follow and the new photos, in the order sent.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhotosAccepted {
    #[schema(example = 7)]
    pub batch_id: i64,
    #[schema(example = json!([41, 42]))]
    pub ids: Vec<i64>,
}

/// Where a photo's processing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhotoStatus {
    /// Stored, waiting for the photo-worker.
    Pending,
    /// Being processed (or retried after a failed attempt; `error` says why).
    Processing,
    /// Thumbnail made, detections stored.
    Completed,
    /// Failed for good; `error` says why.
    Failed,
}

impl From<ProcessingStatus> for PhotoStatus {
    fn from(s: ProcessingStatus) -> Self {
        match s {
            ProcessingStatus::Pending => Self::Pending,
            ProcessingStatus::Processing => Self::Processing,
            ProcessingStatus::Completed => Self::Completed,
            ProcessingStatus::Failed => Self::Failed,
        }
    }
}

/// `GET /api/photos/{id}/status`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhotoStatusResponse {
    #[schema(example = 42)]
    pub id: i64,
    #[schema(example = "completed")]
    pub status: PhotoStatus,
    /// Why processing failed, or why the last attempt did.
    pub error: Option<String>,
    /// True once `completed`: the detections are in.
    pub is_processed: bool,
    /// When processing ended (`completed` or `failed`).
    pub processed_at: Option<DateTime<Utc>>,
}

/// Where a bib lies on the photo, in pixels.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoundingBox {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

/// A bib number found on a photo.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DetectionResponse {
    #[schema(example = "1234")]
    pub number: String,
    /// 0 to 1.
    #[schema(example = 0.93)]
    pub confidence: f32,
    #[serde(rename = "box")]
    pub bbox: BoundingBox,
}

/// A photo with its processing state and detections.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhotoResponse {
    pub id: i64,
    pub batch_id: i64,
    pub status: PhotoStatus,
    pub error: Option<String>,
    pub is_processed: bool,
    pub processed_at: Option<DateTime<Utc>>,
    /// The file name sent with the upload.
    pub original_name: Option<String>,
    /// The URL a photo given by URL is fetched from.
    pub source_url: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// `/api/photos/{id}/thumbnail` once there is one.
    pub thumbnail_url: Option<String>,
    /// Most confident first; empty until `completed`.
    pub detections: Vec<DetectionResponse>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One photo in which a bib was found.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BibPhoto {
    pub id: i64,
    pub thumbnail_url: Option<String>,
    /// The best confidence of the bib on this photo.
    pub confidence: f32,
    pub processed_at: Option<DateTime<Utc>>,
}

/// `GET /api/photos?bib=`: the photos on which the bib was detected, most confident first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BibSearchResponse {
    #[schema(example = "1234")]
    pub bib: String,
    pub photos: Vec<BibPhoto>,
}

/// An upload's progress.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub total: i64,
    pub pending: i64,
    pub processing: i64,
    pub completed: i64,
    pub failed: i64,
    /// True when every photo is `completed` or `failed`.
    pub done: bool,
}

/// `?bib=1234&limit=50`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BibQuery {
    /// The bib number, 1 to 8 digits (leading zeros count). Checked by the
    /// handler, so that a missing one is a 422 naming `bib` like a bad one.
    #[param(required = true, pattern = "^[0-9]{1,8}$", example = "1234")]
    pub bib: Option<String>,
    /// At most this many photos (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

fn thumbnail_url(photo_id: i64, thumbnail_path: Option<&str>) -> Option<String> {
    thumbnail_path.map(|_| format!("/api/photos/{photo_id}/thumbnail"))
}

fn status_of(p: &Photo) -> PhotoStatusResponse {
    PhotoStatusResponse {
        id: p.id,
        status: p.processing_status.into(),
        error: p.processing_error.clone(),
        is_processed: p.processing_status == ProcessingStatus::Completed,
        processed_at: p.processed_at,
    }
}

/// The two types accepted, recognised by their first bytes.
fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(("jpg", "image/jpeg"))
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(("png", "image/png"))
    } else {
        None
    }
}

/// A URL as `POST /api/photos` accepts it: at most 2048 bytes, and what the
/// photo-worker would fetch (`url_guard`): `http`/`https`, no credentials, a
/// host on `PHOTO_FETCH_ALLOWED_HOSTS`, and no IP literal of a refused range.
/// The worker checks the resolved addresses and every redirect again.
fn check_url(config: &Config, raw: &str) -> Result<(), String> {
    if raw.len() > 2048 {
        return Err("must be at most 2048 bytes".into());
    }
    let url = url_guard::check_url(&config.photos.fetch_allowed_hosts, raw)?;
    if let Some(range) = url_guard::forbidden_literal(&url, false) {
        return Err(format!("{range} addresses are never fetched from"));
    }
    Ok(())
}

/// A file stored from an upload, before its row exists.
struct Stored {
    path: String,
    original_name: Option<String>,
    content_type: &'static str,
    size: usize,
}

/// Bytes of a part read before its type is recognised (the PNG signature is
/// the longest).
const SNIFF_BYTES: usize = 8;

/// Recognises a part by its first bytes (`head`, whole if the part is shorter)
/// and starts its file in storage with them.
async fn start_file(
    state: &AppState,
    shown: &str,
    head: &[u8],
) -> Result<(storage::FileWriter, String, &'static str), ApiError> {
    let Some((extension, content_type)) = sniff(head) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "{shown} is not a JPEG or PNG image; only image/jpeg and image/png are accepted"
        )));
    };
    let path = format!("photos/{}.{extension}", uuid::Uuid::now_v7().simple());
    let mut writer = state.storage.create(&path).await.map_err(storing(&path))?;
    writer.write(head).await.map_err(storing(&path))?;
    Ok((writer, path, content_type))
}

/// A storage error while writing `path`, as a 500 naming it in the log.
fn storing(path: &str) -> impl FnOnce(storage::StorageError) -> ApiError + '_ {
    move |e| ApiError::Internal(anyhow::Error::new(e).context(format!("storing {path}")))
}

/// Reads the multipart parts one by one, streaming each file into storage;
/// on any error the files already stored are removed.
async fn store_files(state: &AppState, multipart: Multipart) -> Result<Vec<Stored>, ApiError> {
    let mut stored = Vec::new();
    match read_files(state, multipart, &mut stored).await {
        Ok(()) => Ok(stored),
        Err(e) => {
            for file in &stored {
                if let Err(remove) = state.storage.delete(&file.path).await {
                    warn!(storage.path = %file.path, error = %remove, "removing a file of a refused upload failed");
                }
            }
            Err(e)
        }
    }
}

async fn read_files(
    state: &AppState,
    mut multipart: Multipart,
    stored: &mut Vec<Stored>,
) -> Result<(), ApiError> {
    let limits = &state.config.photos;
    let (max_file, max_request) = (limits.max_file_bytes.get(), limits.max_request_bytes.get());
    let over_request = || {
        ApiError::TooLarge(format!(
            "the upload is larger than PHOTO_MAX_REQUEST_BYTES ({max_request} bytes); send fewer photos per request"
        ))
    };
    let multipart_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            over_request()
        } else {
            ApiError::InvalidParameter(format!(
                "the multipart body does not parse: {}",
                e.body_text()
            ))
        }
    };
    let mut total = 0usize;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let index = stored.len();
        // `file` is the single-file form many clients send; it reads like a
        // `files` part, so the two mix in the order sent.
        let part = match field.name() {
            Some(part @ ("files" | "file")) => part,
            other => {
                return Err(ApiError::validation(
                    other.unwrap_or("(unnamed part)"),
                    "unknown part: send each photo as a part named `files` (or a single one as `file`)",
                ));
            }
        };
        if index >= limits.max_files.get() {
            return Err(ApiError::validation(
                "files",
                format!(
                    "at most {} photos per request (PHOTO_MAX_FILES)",
                    limits.max_files
                ),
            ));
        }
        let name: Option<String> = field
            .file_name()
            .map(|n| n.chars().filter(|c| !c.is_control()).take(255).collect());
        let shown = name.clone().unwrap_or_else(|| format!("{part}[{index}]"));
        // The part streams into a temporary file in storage once its first
        // bytes say what it is; only those bytes are held. Dropped on an error,
        // the writer removes its temporary file.
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut file: Option<(storage::FileWriter, String, &'static str)> = None;
        let mut size = 0usize;
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            total += chunk.len();
            if total > max_request {
                return Err(over_request());
            }
            size += chunk.len();
            if size > max_file {
                return Err(ApiError::TooLarge(format!(
                    "{shown} is larger than PHOTO_MAX_FILE_BYTES ({max_file} bytes)"
                )));
            }
            match &mut file {
                Some((writer, path, _)) => writer.write(&chunk).await.map_err(storing(path))?,
                None => {
                    head.extend_from_slice(&chunk);
                    if head.len() >= SNIFF_BYTES {
                        file = Some(start_file(state, &shown, &head).await?);
                    }
                }
            }
        }
        let (writer, path, content_type) = match file {
            Some(started) => started,
            None => start_file(state, &shown, &head).await?,
        };
        writer.commit().await.map_err(storing(&path))?;
        stored.push(Stored {
            path,
            original_name: name,
            content_type,
            size,
        });
    }
    if stored.is_empty() {
        return Err(ApiError::validation(
            "files",
            "send at least one photo as a part named `files` (or `file`)",
        ));
    }
    Ok(())
}

/// Stores photos (uploaded files, or URLs to fetch) and answers at once; each
/// photo is enqueued for processing.
#[utoipa::path(
    post,
    path = "/api/photos",
    operation_id = "upload_photos",
    tag = "photos",
    request_body(
        content(
            (PhotoFiles = "multipart/form-data"),
            (PhotoUrls = "application/json"),
        ),
        description = "Either JPEG/PNG files as multipart parts named `files` (a single one may be named `file`; both names may be mixed), or JSON `{\"urls\": [...]}`",
    ),
    responses(
        (status = 202, description = "Stored `pending` and enqueued (also when the queue is down: the reconciler enqueues them later). Follow the batch at the `Location`", body = PhotosAccepted,
            headers(("Location" = String, description = "/api/photo-batches/{batch_id}"))),
        (status = 400, description = "The body is not the JSON or multipart expected", body = ErrorBody),
        (status = 413, description = "A file is over PHOTO_MAX_FILE_BYTES or the upload over PHOTO_MAX_REQUEST_BYTES, or the JSON form over API_BODY_LIMIT_BYTES (`payload_too_large`); the message names the limit", body = ErrorBody),
        (status = 415, description = "A file is not a JPEG or PNG, or the body is neither multipart nor JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "A rule is broken: no photo, too many (PHOTO_MAX_FILES), an unknown part, a URL refused; `field` names it (`files`, `urls[2]`, the unknown part's name)", body = ErrorBody),
        (status = 503, description = "`busy`: PHOTO_MAX_CONCURRENT_UPLOADS uploads are being read already; nothing was read or stored, try again after `Retry-After` seconds. Or `timeout`: the request outlasted API_REQUEST_TIMEOUT", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again (with `busy`)"))),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    _caller: Caller,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (work, permit) = if content_type.starts_with("multipart/form-data") {
        // Bounded before a byte is read: each upload holds a chunk or two in
        // memory and a file open, and there are at most this many at once.
        let permit = state.uploads.clone().try_acquire_owned().map_err(|_| {
            ApiError::Busy {
                message: format!(
                    "{} uploads are being read already (PHOTO_MAX_CONCURRENT_UPLOADS); try again shortly",
                    state.config.photos.max_concurrent_uploads
                ),
                retry_after: UPLOAD_RETRY_AFTER,
            }
        })?;
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::InvalidParameter(e.body_text()))?;
        (Work::Files(multipart), Some(permit))
    } else if content_type.starts_with("application/json") {
        let urls = read_urls(&state.config, request).await?;
        (Work::Urls(check_urls(&state.config, urls)?), None)
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "send photos as multipart/form-data parts named `files`, or JSON {\"urls\": [...]} with Content-Type: application/json".into(),
        ));
    };
    // Read, stored and enqueued in a task of its own, as persons are: a client
    // hanging up drops the handler, and a drop midway would leave stored files
    // without rows (the task sees the body end and removes them), or rows
    // between the INSERT and the XADD to the reconciler instead of their jobs.
    let task = async move {
        let new = match work {
            Work::Files(multipart) => NewPhotos::Files(store_files(&state, multipart).await?),
            Work::Urls(urls) => NewPhotos::Urls(urls),
        };
        // The body is read: the next upload may start.
        drop(permit);
        store_batch(state, new).await
    };
    let accepted = tokio::spawn(task.instrument(tracing::Span::current()))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("photo task failed: {e}")))??;
    let location = format!("/api/photo-batches/{}", accepted.batch_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(accepted),
    )
        .into_response())
}

/// What an upload request brings, before anything is stored.
enum Work {
    Files(Multipart),
    Urls(Vec<String>),
}

/// What is to be stored as a batch.
enum NewPhotos {
    Files(Vec<Stored>),
    Urls(Vec<String>),
}

/// How long a client is told to wait when every upload slot is taken.
const UPLOAD_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads `{"urls": [...]}` within `API_BODY_LIMIT_BYTES` (not the upload
/// limit: a list of URLs is small), and stops at the URL one past
/// `PHOTO_MAX_FILES`: a longer list is refused without parsing the rest.
async fn read_urls(config: &Config, request: Request) -> Result<Vec<String>, ApiError> {
    use http_body_util::BodyExt;
    let limit = config.body_limit_bytes.get();
    let body = http_body_util::Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidJson {
                    field: None,
                    message: format!("could not read the body: {e}"),
                }
            }
        })?
        .to_bytes();
    let max = config.photos.max_files.get();
    let too_many = std::cell::Cell::new(false);
    let mut track = serde_path_to_error::Track::new();
    let mut json = serde_json::Deserializer::from_slice(&body);
    let parsed = serde::de::DeserializeSeed::deserialize(
        UrlsSeed {
            max,
            too_many: &too_many,
        },
        serde_path_to_error::Deserializer::new(&mut json, &mut track),
    )
    .and_then(|urls| json.end().map(|()| urls));
    match parsed {
        Ok(urls) => Ok(urls),
        Err(_) if too_many.get() => Err(too_many_photos(max)),
        Err(e) => Err(crate::json::invalid_json(&track.path().to_string(), &e)),
    }
}

fn too_many_photos(max: usize) -> ApiError {
    ApiError::validation(
        "urls",
        format!("at most {max} photos per request (PHOTO_MAX_FILES)"),
    )
}

/// `{"urls": [...]}` read as [`PhotoUrls`] is, but no further than `max + 1`
/// URLs (then `too_many` is set and reading stops with an error).
struct UrlsSeed<'a> {
    max: usize,
    too_many: &'a std::cell::Cell<bool>,
}

/// The list itself, under the same bound.
struct UrlList<'a>(UrlsSeed<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for UrlsSeed<'_> {
    type Value = Vec<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_struct("PhotoUrls", &["urls"], self)
    }
}

impl<'de> serde::de::Visitor<'de> for UrlsSeed<'_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object {\"urls\": [...]}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        use serde::de::Error;
        let mut urls = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "urls" if urls.is_none() => {
                    let seed = UrlList(UrlsSeed {
                        max: self.max,
                        too_many: self.too_many,
                    });
                    urls = Some(map.next_value_seed(seed)?);
                }
                "urls" => return Err(A::Error::duplicate_field("urls")),
                other => return Err(A::Error::unknown_field(other, &["urls"])),
            }
        }
        urls.ok_or_else(|| A::Error::missing_field("urls"))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for UrlList<'_> {
    type Value = Vec<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UrlList<'_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of URLs")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut urls = Vec::new();
        while let Some(url) = seq.next_element::<String>()? {
            if urls.len() == self.0.max {
                self.0.too_many.set(true);
                return Err(serde::de::Error::custom("too many URLs"));
            }
            urls.push(url);
        }
        Ok(urls)
    }
}

fn check_urls(config: &Config, urls: Vec<String>) -> Result<Vec<String>, ApiError> {
    if urls.is_empty() {
        return Err(ApiError::validation("urls", "send at least one URL"));
    }
    if urls.len() > config.photos.max_files.get() {
        return Err(too_many_photos(config.photos.max_files.get()));
    }
    if config.photos.fetch_allowed_hosts.is_empty() {
        return Err(ApiError::validation(
            "urls",
            "photos by URL are turned off here (PHOTO_FETCH_ALLOWED_HOSTS is empty); upload the files instead",
        ));
    }
    for (i, url) in urls.iter().enumerate() {
        check_url(config, url).map_err(|rule| ApiError::validation(&format!("urls[{i}]"), rule))?;
    }
    Ok(urls)
}

/// Commits the batch and its photos, then enqueues one job per photo. A failed
/// enqueue is logged, not answered: the rows are stored and the reconciler
/// enqueues their jobs later with the same keys (docs/design.md, "A row and its job
/// never disagree for long").
async fn store_batch(state: AppState, new: NewPhotos) -> Result<PhotosAccepted, ApiError> {
    let rows: Vec<photos::NewPhoto<'_>> = match &new {
        NewPhotos::Files(files) => files
            .iter()
            .map(|f| photos::NewPhoto {
                original_name: f.original_name.as_deref(),
                content_type: Some(f.content_type),
                storage_path: Some(&f.path),
                source_url: None,
                size_bytes: Some(f.size as i64),
            })
            .collect(),
        NewPhotos::Urls(urls) => urls
            .iter()
            .map(|u| photos::NewPhoto {
                source_url: Some(u),
                ..photos::NewPhoto::default()
            })
            .collect(),
    };
    let inserted: store::Result<_> = async {
        let mut tx = state.pool.begin().await?;
        let batch = photos::insert_batch(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(batch)
    }
    .await;
    let (batch, stored) = match inserted {
        Ok(done) => done,
        Err(e) => {
            if let NewPhotos::Files(files) = &new {
                for f in files {
                    let _ = state.storage.delete(&f.path).await;
                }
            }
            return Err(e.into());
        }
    };
    let ids: Vec<i64> = stored.iter().map(|p| p.id).collect();
    let jobs = ids.iter().map(|&id| jobs::rows::photo_job(id)).collect();
    match state.enqueuer.enqueue_many(jobs).await {
        Ok(_) => info!(
            photo.batch_id = batch.id,
            photo.count = ids.len(),
            "photos stored, processing enqueued"
        ),
        Err(e) => warn!(
            photo.batch_id = batch.id,
            photo.count = ids.len(),
            error = format!("{:#}", anyhow::Error::from(e)),
            "photos stored, but enqueueing their processing failed; the reconciler will enqueue it"
        ),
    }
    Ok(PhotosAccepted {
        batch_id: batch.id,
        ids,
    })
}

async fn load(state: &AppState, id: i64) -> Result<Photo, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    photos::get(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no photo with id {id}")))
}

#[utoipa::path(
    get,
    path = "/api/photos/{id}/status",
    tag = "photos",
    params(("id" = i64, Path, description = "Photo id", example = 42)),
    responses(
        (status = 200, description = "Where the photo's processing stands", body = PhotoStatusResponse),
        (status = 404, description = "No such photo (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn status(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PhotoStatusResponse>, ApiError> {
    Ok(Json(status_of(&load(&state, id).await?)))
}

#[utoipa::path(
    get,
    path = "/api/photos/{id}",
    operation_id = "get_photo",
    tag = "photos",
    params(("id" = i64, Path, description = "Photo id", example = 42)),
    responses(
        (status = 200, description = "The photo, its processing state and the bibs found on it", body = PhotoResponse),
        (status = 404, description = "No such photo (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PhotoResponse>, ApiError> {
    let photo = load(&state, id).await?;
    let detections = {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        photos::detections(&mut conn, id).await?
    };
    let s = status_of(&photo);
    Ok(Json(PhotoResponse {
        id: photo.id,
        batch_id: photo.batch_id,
        status: s.status,
        error: s.error,
        is_processed: s.is_processed,
        processed_at: s.processed_at,
        thumbnail_url: thumbnail_url(photo.id, photo.thumbnail_path.as_deref()),
        original_name: photo.original_name,
        source_url: photo.source_url,
        width: photo.width,
        height: photo.height,
        detections: detections
            .into_iter()
            .map(|d| DetectionResponse {
                number: d.number,
                confidence: d.confidence,
                bbox: BoundingBox {
                    x: d.box_x,
                    y: d.box_y,
                    width: d.box_width,
                    height: d.box_height,
                },
            })
            .collect(),
        attempts: photo.attempts,
        created_at: photo.created_at,
        updated_at: photo.updated_at,
    }))
}

#[utoipa::path(
    get,
    path = "/api/photos/{id}/thumbnail",
    tag = "photos",
    params(("id" = i64, Path, description = "Photo id", example = 42)),
    responses(
        (status = 200, description = "The thumbnail, a JPEG", content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "No such photo, or no thumbnail yet (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn thumbnail(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    thumbnail_jpeg(&state, id).await
}

/// Photo `id`'s thumbnail as a JPEG response, or a 404 saying why there is
/// none: what the API and the dashboard (`/dashboard/workloads/photos/{id}/thumbnail`,
/// for a session's browser) both serve.
pub(crate) async fn thumbnail_jpeg(state: &AppState, id: i64) -> Result<Response, ApiError> {
    let photo = load(state, id).await?;
    let path = photo.thumbnail_path.ok_or_else(|| {
        ApiError::NotFound(format!(
            "photo {id} has no thumbnail yet (it is {})",
            serde_json::to_value(PhotoStatus::from(photo.processing_status))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))
    })?;
    let bytes = state
        .storage
        .get(&path)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "photo {id} is completed but {path} is missing"
            ))
        })?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}

#[utoipa::path(
    get,
    path = "/api/photos/{id}/original",
    operation_id = "get_photo_original",
    tag = "photos",
    params(
        ("id" = i64, Path, description = "Photo id", example = 42),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` this client holds: answered 304 without a body while it is still the photo's (an original never changes)"),
    ),
    responses(
        (status = 200, description = "The file as uploaded (or as fetched from its URL), streamed, with its `Content-Type` as recognised at upload", content(
            (Vec<u8> = "image/jpeg"),
            (Vec<u8> = "image/png"),
        ), headers(
            ("Content-Length" = u64, description = "The file's size in bytes"),
            ("Content-Disposition" = String, description = "`inline; filename=\"...\"; filename*=UTF-8''...`: the name sent with the upload"),
            ("ETag" = String, description = "Names this original; send it back in `If-None-Match`"),
            ("Cache-Control" = String, description = "`private, max-age=86400, immutable`: an original never changes"),
        )),
        (status = 304, description = "`If-None-Match` names this original: the client's copy is current"),
        (status = 404, description = "No such photo, no original yet (a photo given by URL before the worker fetched it), or the file is gone from storage; the message says which (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn original(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let photo = load(&state, id).await?;
    let path = photo.storage_path.ok_or_else(|| {
        ApiError::NotFound(format!(
            "photo {id} has no original yet: it is fetched from its URL by the photo-worker"
        ))
    })?;
    // The stored name is a fresh UUID per file, never rewritten: it names the content.
    let etag = format!("\"{}\"", path.rsplit('/').next().unwrap_or(&path));
    let cached = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
        });
    if cached {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let file = state
        .storage
        .open(&path)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context(format!("opening {path}"))))?
        .ok_or_else(|| {
            warn!(photo.id = id, storage.path = %path, "a photo's original is missing from storage");
            ApiError::NotFound(format!(
                "the original of photo {id} is gone from storage (the photo row remains)"
            ))
        })?;
    let content_type = photo
        .content_type
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let extension = path.rsplit_once('.').map_or("bin", |(_, ext)| ext);
    let name = photo
        .original_name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("photo-{id}.{extension}"));
    let len = file.len;
    let body = axum::body::Body::from_stream(chunks(file.into_reader()));
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_LENGTH, len.to_string()),
        (header::CONTENT_DISPOSITION, content_disposition(&name)),
        (header::ETAG, etag),
        (
            header::CACHE_CONTROL,
            "private, max-age=86400, immutable".to_owned(),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    Ok((headers, body).into_response())
}

/// Bytes read per chunk of a streamed original.
const CHUNK_BYTES: usize = 64 * 1024;

/// `reader` as a stream of chunks of at most [`CHUNK_BYTES`], ending after
/// the first error.
fn chunks(
    reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
) -> impl futures::Stream<Item = std::io::Result<axum::body::Bytes>> + Send {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0; CHUNK_BYTES];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// `inline` with the name twice: `filename` in plain ASCII (anything else, and
/// quotes and backslashes, as `_`) for old clients, and `filename*` with
/// every byte outside RFC 8187's `attr-char` percent-encoded as UTF-8.
fn content_disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c == ' ' || (c.is_ascii_graphic() && !matches!(c, '"' | '\\')) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("inline; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

#[utoipa::path(
    get,
    path = "/api/photos",
    tag = "photos",
    params(BibQuery),
    responses(
        (status = 200, description = "The completed photos on which the bib was detected, most confident first", body = BibSearchResponse),
        (status = 422, description = "`bib` is missing or not 1 to 8 digits, or `limit` is out of range; `field` names it (`validation_failed`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn search(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<BibQuery>,
) -> Result<Json<BibSearchResponse>, ApiError> {
    let bib = query.bib.unwrap_or_default();
    if bib.is_empty() || bib.len() > MAX_BIB_DIGITS || !bib.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::validation(
            "bib",
            format!("must be 1 to {MAX_BIB_DIGITS} digits, as printed on the bib"),
        ));
    }
    let limit = query.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
    if !(1..=MAX_SEARCH_LIMIT).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_SEARCH_LIMIT}"),
        ));
    }
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    let found = photos::by_bib(&mut conn, &bib, i64::from(limit)).await?;
    Ok(Json(BibSearchResponse {
        bib,
        photos: found
            .into_iter()
            .map(|m| BibPhoto {
                id: m.photo_id,
                thumbnail_url: thumbnail_url(m.photo_id, m.thumbnail_path.as_deref()),
                confidence: m.confidence,
                processed_at: m.processed_at,
            })
            .collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/photo-batches/{id}",
    tag = "photos",
    params(("id" = i64, Path, description = "Batch id", example = 7)),
    responses(
        (status = 200, description = "How many photos of the upload stand where", body = BatchResponse),
        (status = 404, description = "No such batch (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn batch(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BatchResponse>, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    let p = photos::batch_progress(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no photo batch with id {id}")))?;
    Ok(Json(BatchResponse {
        id: p.id,
        created_at: p.created_at,
        total: p.total,
        pending: p.pending,
        processing: p.processing,
        completed: p.completed,
        failed: p.failed,
        done: p.completed + p.failed == p.total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hosts: &str) -> Config {
        let vars = [
            ("API_ADMIN_TOKEN", "admin-token-0123456789"),
            ("API_USER_TOKEN", "user-token-0123456789"),
            ("PHOTO_FETCH_ALLOWED_HOSTS", hosts),
            ("PHOTO_MAX_FILES", "2"),
        ];
        Config::from_vars(&vars).expect("valid")
    }

    fn field_of(r: Result<Vec<String>, ApiError>) -> String {
        match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_host_and_credentials_and_the_error_names_the_entry() {
        let c = config("photos.example.com, *.cdn.example.org");
        let ok = vec![
            "https://photos.example.com/a.jpg".to_owned(),
            "http://x.cdn.example.org/b.png?sig=1".to_owned(),
        ];
        assert_eq!(check_urls(&c, ok.clone()).expect("valid"), ok);
        for (bad, field) in [
            (
                vec![
                    "https://photos.example.com/a.jpg",
                    "ftp://photos.example.com/b",
                ],
                "urls[1]",
            ),
            (vec!["http://127.0.0.1/a.jpg"], "urls[0]"),
            (vec!["http://169.254.169.254/latest/meta-data/"], "urls[0]"),
            (vec!["https://u:p@photos.example.com/a.jpg"], "urls[0]"),
            (vec!["not a url"], "urls[0]"),
            (vec![], "urls"),
            (
                vec![
                    "https://photos.example.com/1",
                    "https://photos.example.com/2",
                    "https://photos.example.com/3",
                ],
                "urls",
            ),
        ] {
            let urls = bad.iter().map(|s| s.to_string()).collect();
            assert_eq!(field_of(check_urls(&c, urls)), field, "{bad:?}");
        }
        let off = config("");
        let urls = vec!["https://photos.example.com/a.jpg".to_owned()];
        assert_eq!(field_of(check_urls(&off, urls)), "urls");
    }

    #[test]
    fn the_original_name_is_sent_plain_for_old_clients_and_percent_encoded_for_the_rest() {
        assert_eq!(
            content_disposition("race 01.jpg"),
            "inline; filename=\"race 01.jpg\"; filename*=UTF-8''race%2001.jpg"
        );
        assert_eq!(
            content_disposition("llegada \"Año\"\\ñ.png"),
            "inline; filename=\"llegada _A_o___.png\"; filename*=UTF-8''llegada%20%22A%C3%B1o%22%5C%C3%B1.png"
        );
        // A header value never carries a line break, whatever the name holds.
        let header = content_disposition("a\r\nSet-Cookie: x=1.jpg");
        assert!(!header.contains('\r') && !header.contains('\n'), "{header}");
        assert!(axum::http::HeaderValue::from_str(&header).is_ok());
    }

    #[test]
    fn only_jpeg_and_png_are_recognised() {
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(("jpg", "image/jpeg"))
        );
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(("png", "image/png")));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }
}
