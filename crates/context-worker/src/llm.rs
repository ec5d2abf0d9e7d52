//! The LLM client: one request per condensation, in the OpenAI-compatible
//! chat-completions form or the simple `/chat` form, with a timeout. Errors
//! say whether another attempt can help; none of them carries the text.
//!
//! An answer is used only if it is a complete condensation ([`accept`]): not a
//! refusal (the OpenAI `refusal` field, or an answer opening as a refusal does,
//! `LLM_REFUSAL_OPENINGS`), not cut short (`finish_reason` other than `stop`;
//! the `/chat` form has none), and within the length bounds around the length
//! the prompt asks for. A 429 or 503 with `Retry-After` (seconds) is waited out
//! when the wait ends before the job's deadline; otherwise the attempt fails
//! with the reason and the queue's backoff takes over.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::json;

use crate::config::{AnswerRules, LlmApi, LlmConfig};
use service::upstream::excerpt;

/// What the model is asked to do with the text, asking for about
/// `target_chars` characters.
pub fn instruction(target_chars: usize) -> String {
    format!(
        "Condense the following description of a company's business into a short, factual \
         summary in the same language, of about {target_chars} characters. Keep names, \
         products, services, places and figures; drop repetition and filler. Answer with the \
         summary only."
    )
}

/// The length asked for `original`: `share` of its characters, at least 1.
pub fn requested_length(original: &str, share: f64) -> usize {
    ((original.chars().count() as f64 * share).round() as usize).max(1)
}

/// How many `Retry-After` waits one attempt honours at most.
const MAX_WAITS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the LLM cannot be reached: {0}")]
    Unreachable(String),
    #[error("the LLM answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error(
        "the LLM answered HTTP {status} with Retry-After {wait:?}, more than the job's remaining {remaining:?}; the queue's backoff takes over"
    )]
    Throttled {
        status: u16,
        wait: Duration,
        remaining: Duration,
    },
    #[error("the LLM refused: {0}")]
    Refused(String),
    #[error("the LLM's answer is a truncated completion (finish_reason {0:?})")]
    Truncated(String),
    #[error("the LLM answered something unusable: {0}")]
    BadAnswer(String),
}

impl LlmError {
    /// Whether another attempt cannot help: the server refuses the request
    /// itself (bad key, unknown model, malformed request). Timeouts, 5xx,
    /// 408/429, throttling and unusable answers (refusals included: a model
    /// may answer the same prompt differently) are worth retrying.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Status { status, .. }
            if (400..500).contains(status) && *status != 408 && *status != 429)
    }
}

/// An answer as the server gave it, not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    /// The OpenAI `finish_reason`; None in the `/chat` form.
    pub finish_reason: Option<String>,
    /// The OpenAI `refusal` field.
    pub refusal: Option<String>,
}

/// A client for one LLM server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct ChatAnswer {
    response: Option<String>,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(Self { http, config })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The rules an answer must follow.
    pub fn rules(&self) -> &AnswerRules {
        &self.config.answers
    }

    /// The model's answer for `text` (not yet checked: [`accept`]), waiting out
    /// a `Retry-After` that ends before `deadline` (the job's).
    pub async fn condense(&self, text: &str, deadline: Instant) -> Result<Answer, LlmError> {
        let target = requested_length(text, self.config.answers.summary_share);
        let instruction = instruction(target);
        let (url, body) = match self.config.api {
            LlmApi::OpenAi => (
                format!("{}/v1/chat/completions", self.config.url),
                json!({
                    "model": self.config.model,
                    "messages": [
                        {"role": "system", "content": instruction},
                        {"role": "user", "content": text},
                    ],
                    "temperature": 0.2,
                    "stream": false,
                }),
            ),
            LlmApi::Chat => (
                format!("{}/chat", self.config.url),
                json!({"message": format!("{instruction}\n\n{text}"), "model": self.config.model}),
            ),
        };
        let mut waits = 0;
        let (status, bytes) = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(LlmError::Timeout(self.config.timeout));
            }
            let mut request = self
                .http
                .post(&url)
                .json(&body)
                .timeout(self.config.timeout.min(remaining));
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key.expose());
            }
            let response = request.send().await.map_err(|e| self.transport(e))?;
            let status = response.status().as_u16();
            let wait = retry_after(response.headers());
            let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
            match wait {
                Some(wait) if matches!(status, 429 | 503) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if wait >= remaining || waits >= MAX_WAITS {
                        return Err(LlmError::Throttled {
                            status,
                            wait,
                            remaining,
                        });
                    }
                    waits += 1;
                    tracing::info!(
                        http.status = status,
                        wait_ms = wait.as_millis() as u64,
                        "the LLM asked to wait (Retry-After); waiting within the job"
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => break (status, bytes),
            }
        };
        if !(200..300).contains(&status) {
            return Err(LlmError::Status {
                status,
                body: excerpt(&bytes),
            });
        }
        match self.config.api {
            LlmApi::OpenAi => {
                let choice = serde_json::from_slice::<Completion>(&bytes)
                    .map_err(|e| LlmError::BadAnswer(format!("not a chat completion: {e}")))?
                    .choices
                    .into_iter()
                    .next();
                Ok(choice.map_or_else(Answer::default, |c| Answer {
                    text: c.message.content.unwrap_or_default(),
                    finish_reason: c.finish_reason,
                    refusal: c.message.refusal.filter(|r| !r.trim().is_empty()),
                }))
            }
            LlmApi::Chat => Ok(Answer {
                text: serde_json::from_slice::<ChatAnswer>(&bytes)
                    .map_err(|e| LlmError::BadAnswer(format!("not a chat answer: {e}")))?
                    .response
                    .unwrap_or_default(),
                ..Answer::default()
            }),
        }
    }

    fn transport(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout(self.config.timeout)
        } else {
            // Without the URL's query or body: only where and why.
            LlmError::Unreachable(e.without_url().to_string())
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not honoured: the answer
/// is then an ordinary failed attempt).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// The condensed text, trimmed, if `answer` is one under `rules`: no refusal,
/// a complete completion, not empty, shorter than the original and between
/// the shares of the length asked. Anything else is a failed attempt.
pub fn accept(original: &str, answer: &Answer, rules: &AnswerRules) -> Result<String, LlmError> {
    if let Some(refusal) = &answer.refusal {
        return Err(LlmError::Refused(excerpt(refusal.as_bytes())));
    }
    if let Some(reason) = &answer.finish_reason
        && reason != "stop"
    {
        return Err(LlmError::Truncated(reason.clone()));
    }
    let condensed = answer.text.trim();
    if condensed.is_empty() {
        return Err(LlmError::BadAnswer("an empty text".into()));
    }
    let lower = condensed.to_lowercase();
    if let Some(opening) = rules
        .refusal_openings
        .iter()
        .find(|o| lower.starts_with(o.as_str()))
    {
        return Err(LlmError::Refused(format!(
            "the answer opens with {opening:?} (LLM_REFUSAL_OPENINGS)"
        )));
    }
    let (new_len, old_len) = (condensed.chars().count(), original.chars().count());
    if new_len >= old_len {
        return Err(LlmError::BadAnswer(format!(
            "{new_len} characters, not shorter than the original's {old_len}"
        )));
    }
    let target = requested_length(original, rules.summary_share);
    let min = (target as f64 * rules.min_share).ceil() as usize;
    let max = (target as f64 * rules.max_share).floor() as usize;
    if new_len < min {
        return Err(LlmError::BadAnswer(format!(
            "{new_len} characters, far shorter than the {target} asked (at least {min}, CONTEXT_SUMMARY_MIN_SHARE)"
        )));
    }
    if new_len > max {
        return Err(LlmError::BadAnswer(format!(
            "{new_len} characters, far longer than the {target} asked (at most {max}, CONTEXT_SUMMARY_MAX_SHARE)"
        )));
    }
    Ok(condensed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Answer {
        Answer {
            text: t.to_owned(),
            finish_reason: Some("stop".into()),
            refusal: None,
        }
    }

    #[test]
    fn only_a_complete_answer_within_the_bounds_is_a_condensation() {
        let rules = AnswerRules::default();
        // 400 characters: 100 asked, 30 to 200 accepted.
        let original = "a".repeat(400);
        assert_eq!(
            accept(
                &original,
                &text(&format!("  {} \n", "b".repeat(90))),
                &rules
            )
            .expect("accepted"),
            "b".repeat(90)
        );
        for bad in [
            "",
            "   \n",
            &"b".repeat(29),
            &"b".repeat(201),
            &"b".repeat(400),
        ] {
            assert!(
                matches!(
                    accept(&original, &text(bad), &rules),
                    Err(LlmError::BadAnswer(_))
                ),
                "{bad:?}"
            );
        }
        // Characters, not bytes.
        assert!(accept(&original, &text(&"ñ".repeat(100)), &rules).is_ok());
        // No finish reason (the /chat form) is no truncation.
        let chat = Answer {
            finish_reason: None,
            ..text(&"b".repeat(90))
        };
        assert!(accept(&original, &chat, &rules).is_ok());
    }

    #[test]
    fn refusals_and_truncated_completions_are_refused() {
        let rules = AnswerRules::default();
        let original = "a".repeat(400);
        let refused = Answer {
            refusal: Some("I can't".into()),
            ..text("")
        };
        assert!(matches!(
            accept(&original, &refused, &rules),
            Err(LlmError::Refused(_))
        ));
        let opening = text(&format!("I'M SORRY, but {}", "b".repeat(80)));
        assert!(matches!(
            accept(&original, &opening, &rules),
            Err(LlmError::Refused(_))
        ));
        let no_openings = AnswerRules {
            refusal_openings: Vec::new(),
            ..AnswerRules::default()
        };
        assert!(accept(&original, &opening, &no_openings).is_ok());
        let cut = Answer {
            finish_reason: Some("length".into()),
            ..text(&"b".repeat(90))
        };
        assert!(
            matches!(accept(&original, &cut, &rules), Err(LlmError::Truncated(r)) if r == "length")
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "2".parse().expect("a header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("a header"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn refusals_are_permanent_and_trouble_is_retried() {
        let status = |status| LlmError::Status {
            status,
            body: String::new(),
        };
        assert!(status(401).is_permanent());
        assert!(status(400).is_permanent());
        assert!(!status(429).is_permanent());
        assert!(!status(408).is_permanent());
        assert!(!status(503).is_permanent());
        assert!(!LlmError::Timeout(Duration::from_secs(1)).is_permanent());
        assert!(!LlmError::BadAnswer("x".into()).is_permanent());
        assert!(!LlmError::Refused("x".into()).is_permanent());
    }
}
