//! Wispro, the ISP management API (`/api/v1`): the paginated client list over a
//! generated data set ([`mod@dataset`]), the bare-token `Authorization` header, and
//! errors the way the real API gives them — often HTTP 200 with the error's
//! status in the body.

pub mod dataset;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use service::Secret;

pub use self::dataset::{
    Cedula, Client, Kind, MAX_CLIENTS, Nationality, dataset, dotted, kind_counts, more_clients,
};
use crate::SimState;
use crate::faults::{self, Faults, Roll, fault_setters, lock};

/// The token the simulator expects unless configured otherwise.
pub const DEFAULT_TOKEN: &str = "wispro-sim-token";
/// Clients per page when `per_page` is not given.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// The most clients one page holds; a larger `per_page` is cut to this.
pub const MAX_PER_PAGE: u32 = 1000;

/// How an error reaches the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMode {
    /// HTTP 200 with `{"status": 401, "message": ...}`: what the real API often does.
    #[default]
    InBody,
    /// The error's HTTP status with the same body.
    Http,
}

impl std::str::FromStr for ErrorMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "in_body" => Ok(ErrorMode::InBody),
            "http" => Ok(ErrorMode::Http),
            _ => Err("must be in_body or http".to_owned()),
        }
    }
}

/// Wispro's settings at start.
#[derive(Debug, Clone)]
pub struct WisproConfig {
    /// The `Authorization` header value expected (the bare token).
    pub token: Secret,
    /// Clients in the data set.
    pub clients: usize,
    /// The data set's seed.
    pub seed: u64,
    /// The knobs at start.
    pub knobs: WisproKnobs,
}

impl Default for WisproConfig {
    fn default() -> Self {
        Self {
            token: Secret::new(DEFAULT_TOKEN),
            clients: 1000,
            seed: 42,
            knobs: WisproKnobs::default(),
        }
    }
}

/// Wispro's run-time knobs. JSON: the [`Faults`] keys plus the fields below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WisproKnobs {
    #[serde(flatten)]
    pub faults: Faults,
    /// How errors are answered.
    pub error_mode: ErrorMode,
    /// The status of the errors `error_rate` and `fail_next` cause (default 500).
    pub error_status: u16,
    /// Answer every request with this error (401, 402 licence expired, 404, 412, 500).
    pub force_status: Option<u16>,
    /// Pages of the client list answered with `{"status": 500}`: page number
    /// -> how many more times (`null`: every time).
    pub fail_pages: PageFaults,
    /// Pages of the client list answered with no clients but the usual
    /// pagination (a page before `total_pages` that comes back empty): page
    /// number -> how many more times (`null`: every time).
    pub empty_pages: PageFaults,
    /// Once page `after_page` has been served, `count` new clients are put at
    /// the front of the list, shifting every page after them (once).
    pub insert_front: Option<InsertFront>,
}

/// Page number -> how many more times a page fault applies (`None`: every time).
pub type PageFaults = BTreeMap<u32, Option<u32>>;

/// Clients added at the front of the list in the middle of a paged read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertFront {
    /// The page whose answer comes just before the insertion.
    pub after_page: u32,
    /// How many clients (new numbers, `public_id`s after the largest).
    pub count: usize,
}

/// Whether the fault of `faults` applies to `page` now, counting one use.
fn take_page_fault(faults: &mut PageFaults, page: u32) -> bool {
    match faults.get_mut(&page) {
        None => false,
        Some(None) => true,
        Some(Some(n)) => {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(&page);
            }
            true
        }
    }
}

impl Default for WisproKnobs {
    fn default() -> Self {
        Self {
            faults: Faults::default(),
            error_mode: ErrorMode::InBody,
            error_status: 500,
            force_status: None,
            fail_pages: PageFaults::new(),
            empty_pages: PageFaults::new(),
            insert_front: None,
        }
    }
}

impl WisproKnobs {
    fn validate(&self) -> Result<(), String> {
        self.faults.validate()?;
        for (name, status) in [
            ("error_status", Some(self.error_status)),
            ("force_status", self.force_status),
        ] {
            if let Some(s) = status
                && !(400..=599).contains(&s)
            {
                return Err(format!("{name}: {s} must be an error status (400 to 599)"));
            }
        }
        Ok(())
    }
}

/// Wispro's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WisproStats {
    /// Requests to `/api/v1`, answered or not.
    pub requests: u64,
    /// Client-list pages answered with data (an empty page past the end counts).
    pub pages_served: u64,
    /// Clients sent, over every page.
    pub clients_served: u64,
    /// Answers with a 401 (in the body or as HTTP status).
    pub unauthorized: u64,
    /// Other error answers.
    pub errors: u64,
    /// Client-list requests per page number, whatever the answer.
    pub page_requests: BTreeMap<u32, u64>,
}

/// The size and seed of the data set now, and how many clients of each kind it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub size: usize,
    pub seed: u64,
    pub kinds: BTreeMap<Kind, usize>,
}

#[derive(Debug)]
struct Data {
    seed: u64,
    clients: Arc<Vec<Client>>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    pages_served: AtomicU64,
    clients_served: AtomicU64,
    unauthorized: AtomicU64,
    errors: AtomicU64,
    page_requests: Mutex<BTreeMap<u32, u64>>,
}

#[derive(Debug)]
struct Inner {
    token: Mutex<Secret>,
    data: Mutex<Data>,
    knobs: Mutex<WisproKnobs>,
    counters: Counters,
}

/// Wispro's handle: data set, token, knobs and counters at run time. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WisproControl {
    inner: Arc<Inner>,
}

impl WisproControl {
    pub(crate) fn new(config: WisproConfig) -> Self {
        let clients = Arc::new(dataset(config.clients, config.seed));
        Self {
            inner: Arc::new(Inner {
                token: Mutex::new(config.token),
                data: Mutex::new(Data {
                    seed: config.seed,
                    clients,
                }),
                knobs: Mutex::new(config.knobs),
                counters: Counters::default(),
            }),
        }
    }

    /// The clients served now, in order.
    pub fn clients(&self) -> Arc<Vec<Client>> {
        lock(&self.inner.data).clients.clone()
    }

    /// Size, seed and kind counts of the data set.
    pub fn dataset_info(&self) -> DatasetInfo {
        let data = lock(&self.inner.data);
        DatasetInfo {
            size: data.clients.len(),
            seed: data.seed,
            kinds: kind_counts(&data.clients),
        }
    }

    /// Regenerates the data set (at most [`MAX_CLIENTS`] clients).
    pub fn set_dataset(&self, size: usize, seed: u64) {
        let clients = Arc::new(dataset(size, seed));
        *lock(&self.inner.data) = Data { seed, clients };
    }

    /// Expects `token` in `Authorization` from now on.
    pub fn set_token(&self, token: Secret) {
        *lock(&self.inner.token) = token;
    }

    /// The knobs now.
    pub fn knobs(&self) -> WisproKnobs {
        lock(&self.inner.knobs).clone()
    }

    /// Replaces every knob.
    pub fn set_knobs(&self, knobs: WisproKnobs) {
        *lock(&self.inner.knobs) = knobs;
    }

    /// Changes some knobs.
    pub fn update_knobs(&self, change: impl FnOnce(&mut WisproKnobs)) {
        change(&mut lock(&self.inner.knobs));
    }

    /// Answers errors in the body (HTTP 200) or with their HTTP status.
    pub fn set_error_mode(&self, mode: ErrorMode) {
        self.update_knobs(|k| k.error_mode = mode);
    }

    /// Replaces the data set with `clients`, served in this order (a test's
    /// own data, written apart from the generator).
    pub fn set_clients(&self, clients: Vec<Client>) {
        lock(&self.inner.data).clients = Arc::new(clients);
    }

    /// Fails page `page` of the client list `times` times (`None`: every time).
    pub fn fail_page(&self, page: u32, times: Option<u32>) {
        self.update_knobs(|k| {
            k.fail_pages.insert(page, times);
        });
    }

    /// Answers page `page` with no clients `times` times (`None`: every time).
    pub fn empty_page(&self, page: u32, times: Option<u32>) {
        self.update_knobs(|k| {
            k.empty_pages.insert(page, times);
        });
    }

    /// Puts `count` new clients at the front of the list once page
    /// `after_page` has been served.
    pub fn insert_front_after(&self, after_page: u32, count: usize) {
        self.update_knobs(|k| k.insert_front = Some(InsertFront { after_page, count }));
    }

    /// Puts `count` new clients (fresh numbers, the next `public_id`s) at the
    /// front of the list.
    fn insert_front(&self, count: usize) {
        let mut data = lock(&self.inner.data);
        let seed = data.seed ^ data.clients.len() as u64;
        let mut clients = dataset::more_clients(&data.clients, count, seed);
        clients.extend(data.clients.iter().cloned());
        data.clients = Arc::new(clients);
    }

    /// Answers every request with `status` (`None` to stop).
    pub fn force_status(&self, status: Option<u16>) {
        self.update_knobs(|k| k.force_status = status);
    }

    /// The counters now.
    pub fn stats(&self) -> WisproStats {
        let c = &self.inner.counters;
        WisproStats {
            requests: c.requests.load(Ordering::SeqCst),
            pages_served: c.pages_served.load(Ordering::SeqCst),
            clients_served: c.clients_served.load(Ordering::SeqCst),
            unauthorized: c.unauthorized.load(Ordering::SeqCst),
            errors: c.errors.load(Ordering::SeqCst),
            page_requests: lock(&c.page_requests).clone(),
        }
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        let c = &self.inner.counters;
        for n in [
            &c.requests,
            &c.pages_served,
            &c.clients_served,
            &c.unauthorized,
            &c.errors,
        ] {
            n.store(0, Ordering::SeqCst);
        }
        lock(&c.page_requests).clear();
    }

    fn error(&self, mode: ErrorMode, status: u16) -> Response {
        let c = &self.inner.counters;
        if status == 401 {
            c.unauthorized.fetch_add(1, Ordering::SeqCst);
        } else {
            c.errors.fetch_add(1, Ordering::SeqCst);
        }
        error_response(mode, status)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        given == Some(lock(&self.inner.token).expose())
    }
}

fault_setters!(WisproControl);

/// The message the real API pairs with a status.
fn message(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "License expired",
        403 => "Forbidden",
        404 => "Not Found",
        412 => "Precondition Failed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// `{"status": S, "message": ...}` at HTTP 200 (in body) or HTTP S.
pub fn error_response(mode: ErrorMode, status: u16) -> Response {
    let http = match mode {
        ErrorMode::InBody => StatusCode::OK,
        ErrorMode::Http => {
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    let body = json!({"status": status, "message": message(status)});
    (http, Json(body)).into_response()
}

/// `/api/v1/...`
pub fn router() -> Router<SimState> {
    Router::new()
        .route("/api/v1/clients", get(list_clients))
        .route("/api/v1/clients/{id}", get(get_client))
        .route("/api/v1", any(not_found))
        .route("/api/v1/{*rest}", any(not_found))
}

/// `/_sim/wispro/...`: stats, knobs, data set.
pub fn control_router() -> Router<SimState> {
    Router::new()
        .route("/_sim/wispro/stats", get(get_stats))
        .route("/_sim/wispro/stats/reset", post(reset_stats))
        .route("/_sim/wispro/knobs", get(get_knobs).post(post_knobs))
        .route("/_sim/wispro/dataset", get(get_dataset).post(post_dataset))
}

/// What every `/api/v1` request goes through before its own work: counting,
/// latency, hang, a forced status, the token, the fault dice.
async fn gate(state: &SimState, headers: &HeaderMap) -> Result<ErrorMode, Response> {
    let w = state.wispro();
    w.inner.counters.requests.fetch_add(1, Ordering::SeqCst);
    let knobs = w.knobs();
    let shutdown = state.shutdown();
    if !faults::sleep(knobs.faults.latency, shutdown).await {
        return Err(error_response(ErrorMode::Http, 503));
    }
    if knobs.faults.hang {
        tracing::debug!("wispro request hangs");
        faults::sleep(faults::HANG_FOR, shutdown).await;
        return Err(error_response(ErrorMode::Http, 503));
    }
    let mode = knobs.error_mode;
    if let Some(status) = knobs.force_status {
        return Err(w.error(mode, status));
    }
    if !w.authorized(headers) {
        tracing::debug!("wispro request without the right token");
        return Err(w.error(mode, 401));
    }
    let roll = {
        let mut k = lock(&w.inner.knobs);
        (faults::roll(&mut k.faults, state.rng()), k.error_status)
    };
    match roll {
        (Roll::Answer, _) => Ok(mode),
        (Roll::Hang, _) => {
            faults::sleep(faults::HANG_FOR, shutdown).await;
            Err(error_response(ErrorMode::Http, 503))
        }
        (Roll::Fail, status) => {
            tracing::debug!(status, "wispro request fails by a knob");
            Err(w.error(mode, status))
        }
    }
}

/// A whole number of at least 1, or `default` when absent.
fn page_param(raw: Option<&String>, default: u32) -> Option<u32> {
    match raw {
        None => Some(default),
        Some(v) if v.trim().is_empty() => Some(default),
        Some(v) => v.trim().parse().ok().filter(|n| *n >= 1),
    }
}

async fn list_clients(
    State(state): State<SimState>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let mode = match gate(&state, &headers).await {
        Ok(mode) => mode,
        Err(response) => return response,
    };
    let w = state.wispro();
    let (Some(page), Some(per_page)) = (
        page_param(params.get("page"), 1),
        page_param(params.get("per_page"), DEFAULT_PER_PAGE),
    ) else {
        return w.error(mode, 412);
    };
    let per_page = per_page.min(MAX_PER_PAGE);
    *lock(&w.inner.counters.page_requests)
        .entry(page)
        .or_insert(0) += 1;
    let (fail, empty, insert) = {
        let mut k = lock(&w.inner.knobs);
        let fail = take_page_fault(&mut k.fail_pages, page);
        let empty = !fail && take_page_fault(&mut k.empty_pages, page);
        let insert = match k.insert_front {
            Some(i) if !fail && i.after_page == page => k.insert_front.take(),
            _ => None,
        };
        (fail, empty, insert)
    };
    if fail {
        tracing::debug!(page, "wispro page fails by a knob");
        return w.error(mode, 500);
    }
    let clients = w.clients();
    // After this answer is built and before it is sent, so that the reader's
    // next page already sees the shifted list.
    if let Some(insert) = insert {
        tracing::debug!(
            page,
            count = insert.count,
            "wispro clients inserted at the front"
        );
        w.insert_front(insert.count);
    }
    let total = clients.len();
    let start = (page as usize - 1).saturating_mul(per_page as usize);
    let data: Vec<&Client> = if empty {
        tracing::debug!(page, "wispro page comes back empty by a knob");
        Vec::new()
    } else {
        clients.iter().skip(start).take(per_page as usize).collect()
    };
    let c = &w.inner.counters;
    c.pages_served.fetch_add(1, Ordering::SeqCst);
    c.clients_served
        .fetch_add(data.len() as u64, Ordering::SeqCst);
    Json(json!({
        "status": 200,
        "meta": {
            "object": "client",
            "pagination": {
                "total_records": total,
                "total_pages": total.div_ceil(per_page as usize),
                "per_page": per_page,
                "current_page": page,
            },
        },
        "data": data,
    }))
    .into_response()
}

/// `GET /api/v1/clients/{id}`: by `id` (UUID) or `public_id`.
async fn get_client(
    State(state): State<SimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mode = match gate(&state, &headers).await {
        Ok(mode) => mode,
        Err(response) => return response,
    };
    let w = state.wispro();
    let clients = w.clients();
    let found = clients
        .iter()
        .find(|c| c.id == id || c.public_id.to_string() == id);
    match found {
        Some(client) => Json(json!({"status": 200, "meta": {"object": "client"}, "data": client}))
            .into_response(),
        None => w.error(mode, 404),
    }
}

async fn not_found(State(state): State<SimState>, headers: HeaderMap) -> Response {
    match gate(&state, &headers).await {
        Ok(mode) => state.wispro().error(mode, 404),
        Err(response) => response,
    }
}

async fn get_stats(State(state): State<SimState>) -> Json<WisproStats> {
    Json(state.wispro().stats())
}

async fn reset_stats(State(state): State<SimState>) -> Json<WisproStats> {
    state.wispro().reset_stats();
    Json(state.wispro().stats())
}

async fn get_knobs(State(state): State<SimState>) -> Json<WisproKnobs> {
    Json(state.wispro().knobs())
}

async fn post_knobs(State(state): State<SimState>, body: Bytes) -> Response {
    let w = state.wispro();
    let result = serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|patch| faults::patch(&w.knobs(), patch))
        .and_then(|knobs: WisproKnobs| knobs.validate().map(|()| knobs));
    match result {
        Ok(knobs) => {
            tracing::info!(?knobs, "wispro knobs changed");
            w.set_knobs(knobs.clone());
            Json(knobs).into_response()
        }
        Err(message) => crate::bad_knobs(message),
    }
}

async fn get_dataset(State(state): State<SimState>) -> Json<DatasetInfo> {
    Json(state.wispro().dataset_info())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetRequest {
    size: Option<usize>,
    seed: Option<u64>,
}

async fn post_dataset(State(state): State<SimState>, body: Bytes) -> Response {
    let w = state.wispro();
    let request: DatasetRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return crate::bad_knobs(e.to_string()),
    };
    let now = w.dataset_info();
    let size = request.size.unwrap_or(now.size);
    if size > MAX_CLIENTS {
        return crate::bad_knobs(format!("size: {size} is over the maximum of {MAX_CLIENTS}"));
    }
    let seed = request.seed.unwrap_or(now.seed);
    w.set_dataset(size, seed);
    tracing::info!(size, seed, "wispro data set regenerated");
    Json(w.dataset_info()).into_response()
}
