//! The LLM: OpenAI-compatible `POST /v1/chat/completions` and the simple
//! `POST /chat` the replaced system used. Both answer a deterministic
//! condensation of the last user message ([`condense`]), so a test can predict
//! the answer; counters of requests in flight let a test check a concurrency
//! limit that spans worker replicas.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use service::Secret;

use crate::SimState;
use crate::faults::{self, Faults, Roll, fault_setters, lock};

/// The model named in answers when a request names none.
pub const DEFAULT_MODEL: &str = "sim-condenser";

/// Inputs up to this many characters come back whole; longer ones are condensed
/// to about a quarter of their length, always strictly shorter.
pub const CONDENSE_ABOVE_CHARS: usize = 100;

/// The LLM's settings fixed at start.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Echoed when a request has no `model`.
    pub model: String,
    /// When set, `/v1/chat/completions` requires `Authorization: Bearer <key>`.
    pub api_key: Option<Secret>,
    /// The knobs at start.
    pub knobs: LlmKnobs,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.to_owned(),
            api_key: None,
            knobs: LlmKnobs::default(),
        }
    }
}

/// What a successful (HTTP 200) answer holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// The condensation of [`condense`], `finish_reason: "stop"`.
    #[default]
    Condensed,
    /// A refusal: in the OpenAI form `content: null` and the text in
    /// `refusal`, as OpenAI answers; in the `/chat` form the text itself
    /// ([`REFUSAL`]).
    Refusal,
    /// The first half of the condensation, `finish_reason: "length"` (the
    /// `/chat` form has no finish reason: the cut text alone).
    Truncated,
    /// The condensation's first three words, `finish_reason: "stop"`.
    TooShort,
}

/// The text of a refusal.
pub const REFUSAL: &str = "I'm sorry, but I can't help with that request.";

/// The LLM's run-time knobs. JSON: the [`Faults`] keys plus `empty_answer`,
/// `answer`, `throttle_next`, `throttle_status` and `retry_after_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmKnobs {
    #[serde(flatten)]
    pub faults: Faults,
    /// Answer with empty content (HTTP 200).
    pub empty_answer: bool,
    /// What an answer holds.
    pub answer: AnswerMode,
    /// The next N requests are answered `throttle_status` with
    /// `Retry-After: retry_after_s` (before latency and the other faults).
    pub throttle_next: u32,
    /// 429 or 503.
    pub throttle_status: u16,
    /// The `Retry-After` of a throttled answer, in seconds.
    pub retry_after_s: u64,
}

impl Default for LlmKnobs {
    fn default() -> Self {
        Self {
            faults: Faults::default(),
            empty_answer: false,
            answer: AnswerMode::default(),
            throttle_next: 0,
            throttle_status: 429,
            retry_after_s: 1,
        }
    }
}

impl LlmKnobs {
    fn validate(&self) -> Result<(), String> {
        self.faults.validate()?;
        if !matches!(self.throttle_status, 429 | 503) {
            return Err(format!(
                "throttle_status: {} must be 429 or 503",
                self.throttle_status
            ));
        }
        Ok(())
    }
}

/// The counters of one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStats {
    /// Requests received since the last reset.
    pub requests: u64,
    /// Requests being served right now (latency and hangs included).
    pub in_flight: u64,
    /// The most requests ever in flight at once since the last reset.
    pub max_in_flight: u64,
    /// Requests answered with a server error by a knob.
    pub errors: u64,
}

/// What `GET /_sim/llm/stats` answers: every route and their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmStats {
    /// Both routes together; `max_in_flight` counts requests of either route at once.
    pub total: RouteStats,
    /// Per route: `chat_completions` and `chat`.
    pub routes: BTreeMap<String, RouteStats>,
}

#[derive(Debug, Default)]
struct Gauge {
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    errors: AtomicU64,
}

impl Gauge {
    fn enter(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn read(&self) -> RouteStats {
        RouteStats {
            requests: self.requests.load(Ordering::SeqCst),
            in_flight: self.in_flight.load(Ordering::SeqCst),
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
            errors: self.errors.load(Ordering::SeqCst),
        }
    }

    fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.errors.store(0, Ordering::SeqCst);
        // What is in flight now still counts as the new maximum.
        let now = self.in_flight.load(Ordering::SeqCst);
        self.max_in_flight.store(now, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy)]
enum Route {
    ChatCompletions,
    Chat,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::ChatCompletions => "chat_completions",
            Route::Chat => "chat",
        }
    }
}

/// Leaves the gauges when the request ends, however it ends (answered, or
/// dropped because the client went away).
struct InFlight<'a> {
    gauges: [&'a Gauge; 2],
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        for g in self.gauges {
            g.leave();
        }
    }
}

#[derive(Debug)]
struct Inner {
    model: String,
    api_key: Option<Secret>,
    knobs: Mutex<LlmKnobs>,
    total: Gauge,
    chat_completions: Gauge,
    chat: Gauge,
}

/// The LLM's handle: knobs and counters at run time. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LlmControl {
    inner: Arc<Inner>,
}

impl LlmControl {
    pub(crate) fn new(config: LlmConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                model: config.model,
                api_key: config.api_key,
                knobs: Mutex::new(config.knobs),
                total: Gauge::default(),
                chat_completions: Gauge::default(),
                chat: Gauge::default(),
            }),
        }
    }

    /// The knobs now.
    pub fn knobs(&self) -> LlmKnobs {
        lock(&self.inner.knobs).clone()
    }

    /// Replaces every knob.
    pub fn set_knobs(&self, knobs: LlmKnobs) {
        *lock(&self.inner.knobs) = knobs;
    }

    /// Changes some knobs.
    pub fn update_knobs(&self, change: impl FnOnce(&mut LlmKnobs)) {
        change(&mut lock(&self.inner.knobs));
    }

    /// Answers with empty content.
    pub fn set_empty_answer(&self, empty: bool) {
        self.update_knobs(|k| k.empty_answer = empty);
    }

    /// What answers hold from now on.
    pub fn set_answer(&self, mode: AnswerMode) {
        self.update_knobs(|k| k.answer = mode);
    }

    /// Answers the next `n` requests `status` (429 or 503) with
    /// `Retry-After: retry_after_s`.
    pub fn throttle_next(&self, n: u32, status: u16, retry_after_s: u64) {
        self.update_knobs(|k| {
            k.throttle_next = n;
            k.throttle_status = if status == 503 { 503 } else { 429 };
            k.retry_after_s = retry_after_s;
        });
    }

    /// The counters now.
    pub fn stats(&self) -> LlmStats {
        let i = &self.inner;
        LlmStats {
            total: i.total.read(),
            routes: [
                (
                    Route::ChatCompletions.name().to_owned(),
                    i.chat_completions.read(),
                ),
                (Route::Chat.name().to_owned(), i.chat.read()),
            ]
            .into(),
        }
    }

    /// Zeroes the counters; `max_in_flight` restarts from what is in flight now.
    pub fn reset_stats(&self) {
        let i = &self.inner;
        for g in [&i.total, &i.chat_completions, &i.chat] {
            g.reset();
        }
    }

    fn gauge(&self, route: Route) -> &Gauge {
        match route {
            Route::ChatCompletions => &self.inner.chat_completions,
            Route::Chat => &self.inner.chat,
        }
    }

    fn enter(&self, route: Route) -> InFlight<'_> {
        let gauges = [&self.inner.total, self.gauge(route)];
        for g in gauges {
            g.enter();
        }
        InFlight { gauges }
    }

    fn count_error(&self, route: Route) {
        self.inner.total.errors.fetch_add(1, Ordering::SeqCst);
        self.gauge(route).errors.fetch_add(1, Ordering::SeqCst);
    }
}

fault_setters!(LlmControl);

/// `/v1/chat/completions` and `/chat`.
pub fn router() -> Router<SimState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat", post(chat))
}

/// `/_sim/llm/...`: stats and knobs.
pub fn control_router() -> Router<SimState> {
    Router::new()
        .route("/_sim/llm/stats", get(get_stats))
        .route("/_sim/llm/stats/reset", post(reset_stats))
        .route("/_sim/llm/knobs", get(get_knobs).post(post_knobs))
}

async fn get_stats(State(state): State<SimState>) -> Json<LlmStats> {
    Json(state.llm().stats())
}

async fn reset_stats(State(state): State<SimState>) -> Json<LlmStats> {
    state.llm().reset_stats();
    Json(state.llm().stats())
}

async fn get_knobs(State(state): State<SimState>) -> Json<LlmKnobs> {
    Json(state.llm().knobs())
}

async fn post_knobs(State(state): State<SimState>, body: Bytes) -> Response {
    let llm = state.llm();
    let result = serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|patch| faults::patch(&llm.knobs(), patch))
        .and_then(|knobs: LlmKnobs| knobs.validate().map(|()| knobs));
    match result {
        Ok(knobs) => {
            tracing::info!(?knobs, "llm knobs changed");
            llm.set_knobs(knobs.clone());
            Json(knobs).into_response()
        }
        Err(message) => crate::bad_knobs(message),
    }
}

/// An OpenAI-style error body.
fn openai_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    (status, Json(body)).into_response()
}

/// What both routes share: counting, latency, then the fault dice. `None` means
/// answer normally; `Some` is the response to send instead.
async fn faults_first(state: &SimState, route: Route) -> Option<Response> {
    let llm = state.llm();
    let (latency, roll, throttle) = {
        let mut knobs = lock(&llm.inner.knobs);
        let throttle = (knobs.throttle_next > 0).then(|| {
            knobs.throttle_next -= 1;
            (knobs.throttle_status, knobs.retry_after_s)
        });
        let roll = faults::roll(&mut knobs.faults, state.rng());
        (knobs.faults.latency, roll, throttle)
    };
    if let Some((status, retry_after)) = throttle {
        llm.count_error(route);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let mut response = openai_error(
            status,
            "rate_limit_exceeded",
            "Rate limit reached; retry after the time in Retry-After (simulated).",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
        return Some(response);
    }
    let shutdown = state.shutdown();
    if !faults::sleep(latency, shutdown).await {
        return Some(stopping());
    }
    match roll {
        Roll::Answer => None,
        Roll::Hang => {
            tracing::debug!(route = route.name(), "llm request hangs");
            faults::sleep(faults::HANG_FOR, shutdown).await;
            Some(stopping())
        }
        Roll::Fail => {
            llm.count_error(route);
            let status = if lock(state.rng()).chance(0.5) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            tracing::debug!(
                route = route.name(),
                status = status.as_u16(),
                "llm request fails by a knob"
            );
            Some(openai_error(
                status,
                "server_error",
                "The server had an error while processing your request (simulated).",
            ))
        }
    }
}

fn stopping() -> Response {
    openai_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "The simulator is stopping.",
    )
}

#[derive(Debug, Deserialize)]
struct ChatCompletionRequest {
    model: Option<String>,
    messages: Vec<Message>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

impl Message {
    /// The text of `content`: a string, or the text parts of an array of parts.
    fn text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

fn authorized(expected: &Option<Secret>, headers: &HeaderMap) -> bool {
    let Some(key) = expected else { return true };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == key.expose())
}

/// A rough token count: about four characters a token, at least one for text.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

async fn chat_completions(
    State(state): State<SimState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let llm = state.llm().clone();
    let _in_flight = llm.enter(Route::ChatCompletions);
    if !authorized(&llm.inner.api_key, &headers) {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Incorrect API key provided.",
        );
    }
    let request: ChatCompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("We could not parse the JSON body of your request: {e}"),
            );
        }
    };
    if request.messages.is_empty() {
        return openai_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages: must contain at least one message",
        );
    }
    if let Some(response) = faults_first(&state, Route::ChatCompletions).await {
        return response;
    }
    let input = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .or(request.messages.last())
        .map(Message::text)
        .unwrap_or_default();
    let knobs = llm.knobs();
    let content = if knobs.empty_answer {
        String::new()
    } else {
        answer(knobs.answer, &input)
    };
    let (content, refusal) = match knobs.answer {
        AnswerMode::Refusal => (Value::Null, Value::from(REFUSAL)),
        _ => (Value::from(content.clone()), Value::Null),
    };
    let finish_reason = match knobs.answer {
        AnswerMode::Truncated => "length",
        _ => "stop",
    };
    let content_text = content.as_str().unwrap_or_default().to_owned();
    let prompt_tokens: u64 = request.messages.iter().map(|m| tokens(&m.text())).sum();
    let completion_tokens = tokens(&content_text);
    let model = request.model.unwrap_or_else(|| llm.inner.model.clone());
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal},
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    message: Option<String>,
    prompt: Option<String>,
}

async fn chat(State(state): State<SimState>, body: Bytes) -> Response {
    let llm = state.llm().clone();
    let _in_flight = llm.enter(Route::Chat);
    let input = match serde_json::from_slice::<ChatRequest>(&body) {
        Ok(ChatRequest {
            message: Some(text),
            ..
        })
        | Ok(ChatRequest {
            prompt: Some(text), ..
        }) => text,
        Ok(_) => {
            return crate::error_body(
                StatusCode::BAD_REQUEST,
                "message",
                "message (or prompt) is required and must be a string",
            );
        }
        Err(e) => {
            return crate::error_body(StatusCode::BAD_REQUEST, "body", &e.to_string());
        }
    };
    if let Some(response) = faults_first(&state, Route::Chat).await {
        return response;
    }
    let knobs = llm.knobs();
    let response = if knobs.empty_answer {
        String::new()
    } else {
        answer(knobs.answer, &input)
    };
    Json(json!({ "response": response })).into_response()
}

/// The answer text of `mode` for `input` (the refusal's text for a refusal).
fn answer(mode: AnswerMode, input: &str) -> String {
    let condensed = condense(input);
    match mode {
        AnswerMode::Condensed => condensed,
        AnswerMode::Refusal => REFUSAL.to_owned(),
        AnswerMode::Truncated => cut_at_word(&condensed, condensed.chars().count() / 2),
        AnswerMode::TooShort => condensed
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

// ---------------------------------------------------------------------------
// Condensation

/// Words too common to be key words.
const STOP_WORDS: &[&str] = &[
    "about", "after", "again", "against", "because", "before", "being", "between", "could",
    "during", "other", "should", "their", "there", "these", "those", "through", "under", "until",
    "which", "while", "would", "where", "desde", "entre", "hasta", "sobre", "porque", "cuando",
    "donde", "todos", "todas", "también", "tiene", "tienen", "puede", "pueden", "estos", "estas",
    "quiero", "necesito",
];

/// A deterministic "summary" of `text`: inputs of up to
/// [`CONDENSE_ABOVE_CHARS`] characters come back trimmed; longer ones keep
/// their first sentences and then their key words (longest first) until about
/// a quarter of the input's length, and are always strictly shorter than it.
pub fn condense(text: &str) -> String {
    let text = text.trim();
    let len = text.chars().count();
    if len <= CONDENSE_ABOVE_CHARS {
        return text.to_owned();
    }
    let budget = (len / 4).max(1);
    let sentences = sentences(text);
    let mut out = String::new();
    for sentence in &sentences {
        let needed = sentence.chars().count() + usize::from(!out.is_empty());
        if out.chars().count() + needed > budget {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(sentence);
    }
    if out.is_empty() {
        // The first sentence alone is over budget: cut it at a word boundary.
        out = cut_at_word(sentences.first().map_or(text, |s| s.as_str()), budget - 1);
        out.push('…');
    }
    let mut keywords: Vec<String> = Vec::new();
    let lower_out = out.to_lowercase();
    let mut candidates: Vec<(usize, String)> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 5)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()) && !lower_out.contains(w.as_str()))
        .enumerate()
        .collect();
    // Longest first; ties keep the order of appearance, so the result is stable.
    candidates.sort_by(|a, b| {
        b.1.chars()
            .count()
            .cmp(&a.1.chars().count())
            .then(a.0.cmp(&b.0))
    });
    let prefix = " Key words: ";
    let mut tail = String::new();
    for (_, word) in candidates {
        if keywords.contains(&word) {
            continue;
        }
        let sep = if keywords.is_empty() { prefix } else { ", " };
        let grown = out.chars().count()
            + tail.chars().count()
            + sep.chars().count()
            + word.chars().count()
            + 1;
        if grown > budget {
            continue;
        }
        tail.push_str(sep);
        tail.push_str(&word);
        keywords.push(word);
    }
    if !tail.is_empty() {
        out.push_str(&tail);
        out.push('.');
    }
    debug_assert!(out.chars().count() < len);
    out
}

/// `text` split after `.`, `!` or `?` followed by white space.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()) {
            let s = current.split_whitespace().collect::<Vec<_>>().join(" ");
            if !s.is_empty() {
                out.push(s);
            }
            current.clear();
        }
    }
    let s = current.split_whitespace().collect::<Vec<_>>().join(" ");
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// At most `max` characters of `text`, cut at the last word boundary that fits.
fn cut_at_word(text: &str, max: usize) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        let grown = out.chars().count() + usize::from(!out.is_empty()) + word.chars().count();
        if grown > max {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        out = text.chars().take(max).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "The customer reports that the fibre connection drops every evening \
        around eight. The router was replaced last week but the problem persists. Technicians \
        measured the signal at the street cabinet and found it within range. The customer asks \
        for a discount on the monthly invoice because of the outages.";

    #[test]
    fn each_answer_mode_is_what_its_name_says() {
        let full = condense(LONG);
        assert_eq!(answer(AnswerMode::Condensed, LONG), full);
        assert_eq!(answer(AnswerMode::Refusal, LONG), REFUSAL);
        let cut = answer(AnswerMode::Truncated, LONG);
        assert!(full.starts_with(&cut) && cut.chars().count() <= full.chars().count() / 2);
        assert_eq!(
            answer(AnswerMode::TooShort, LONG)
                .split_whitespace()
                .count(),
            3
        );
    }

    #[test]
    fn short_inputs_come_back_trimmed() {
        assert_eq!(condense("  Hello there.  "), "Hello there.");
    }

    #[test]
    fn long_inputs_shrink_to_about_a_quarter_and_keep_the_first_sentence() {
        let out = condense(LONG);
        let (len, got) = (LONG.chars().count(), out.chars().count());
        assert!(got < len && got <= len / 4, "{got} of {len}: {out}");
        assert!(out.starts_with("The customer reports"), "{out}");
        assert_eq!(condense(LONG), out, "deterministic");
    }

    #[test]
    fn one_long_sentence_is_cut_at_a_word_and_stays_shorter() {
        let text = "word ".repeat(60);
        let out = condense(&text);
        assert!(out.ends_with('…'), "{out}");
        assert!(out.chars().count() < text.trim().chars().count());
        let no_spaces = "x".repeat(500);
        assert!(condense(&no_spaces).chars().count() < 500);
    }

    #[test]
    fn every_length_over_the_threshold_is_strictly_shorter() {
        for n in 90..400 {
            let text: String = LONG.chars().cycle().take(n).collect();
            let out = condense(&text);
            if text.trim().chars().count() > CONDENSE_ABOVE_CHARS {
                assert!(
                    out.chars().count() < text.trim().chars().count(),
                    "{n}: {out}"
                );
            }
        }
    }
}
