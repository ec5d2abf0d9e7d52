//! The LLM client: one request per condensation, in the OpenAI-compatible
//! chat-completions form or the simple `/chat` form, with a timeout. Errors
//! say whether another attempt can help; none of them carries the text.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::config::{LlmApi, LlmConfig};

/// What the model is asked to do with the text.
pub const INSTRUCTION: &str = "Condense the following description of a company's business into a \
     short, factual summary in the same language. Keep names, products, services, places and \
     figures; drop repetition and filler. Answer with the summary only.";

/// Longest part of an error body kept in an error message.
const MAX_BODY_IN_ERROR: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the LLM cannot be reached: {0}")]
    Unreachable(String),
    #[error("the LLM answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the LLM answered something unusable: {0}")]
    BadAnswer(String),
}

impl LlmError {
    /// Whether another attempt cannot help: the server refuses the request
    /// itself (bad key, unknown model, malformed request). Timeouts, 5xx,
    /// 408/429 and odd answers are worth retrying.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Status { status, .. }
            if (400..500).contains(status) && *status != 408 && *status != 429)
    }
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
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
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

    /// The model's answer for `text` (not yet checked for being a condensation).
    pub async fn condense(&self, text: &str) -> Result<String, LlmError> {
        let (url, body) = match self.config.api {
            LlmApi::OpenAi => (
                format!("{}/v1/chat/completions", self.config.url),
                json!({
                    "model": self.config.model,
                    "messages": [
                        {"role": "system", "content": INSTRUCTION},
                        {"role": "user", "content": text},
                    ],
                    "temperature": 0.2,
                    "stream": false,
                }),
            ),
            LlmApi::Chat => (
                format!("{}/chat", self.config.url),
                json!({"message": format!("{INSTRUCTION}\n\n{text}"), "model": self.config.model}),
            ),
        };
        let mut request = self.http.post(url).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: excerpt(&bytes),
            });
        }
        let answer = match self.config.api {
            LlmApi::OpenAi => serde_json::from_slice::<Completion>(&bytes)
                .map_err(|e| LlmError::BadAnswer(format!("not a chat completion: {e}")))?
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.message.content),
            LlmApi::Chat => {
                serde_json::from_slice::<ChatAnswer>(&bytes)
                    .map_err(|e| LlmError::BadAnswer(format!("not a chat answer: {e}")))?
                    .response
            }
        };
        Ok(answer.unwrap_or_default())
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

/// The condensed text, trimmed, if it is one: not empty, and shorter than the
/// original (in characters). Anything else is a failed attempt.
pub fn accept(original: &str, answer: &str) -> Result<String, LlmError> {
    let condensed = answer.trim();
    if condensed.is_empty() {
        return Err(LlmError::BadAnswer("an empty text".into()));
    }
    let (new_len, old_len) = (condensed.chars().count(), original.chars().count());
    if new_len >= old_len {
        return Err(LlmError::BadAnswer(format!(
            "{new_len} characters, not shorter than the original's {old_len}"
        )));
    }
    Ok(condensed.to_owned())
}

/// The start of an error body, on one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_BODY_IN_ERROR) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shorter_non_empty_answer_is_a_condensation() {
        let original = "a".repeat(100);
        assert_eq!(accept(&original, "  short \n").expect("accepted"), "short");
        for bad in ["", "   \n", &"b".repeat(100), &"b".repeat(150)] {
            assert!(
                matches!(accept(&original, bad), Err(LlmError::BadAnswer(_))),
                "{bad:?}"
            );
        }
        // Characters, not bytes: 50 two-byte letters are shorter than 60 ASCII ones.
        assert!(accept(&"a".repeat(60), &"ñ".repeat(50)).is_ok());
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
    }

    #[test]
    fn error_bodies_are_cut_to_one_short_line() {
        assert_eq!(excerpt(b"{\"error\":\n  \"bad\"}"), "{\"error\": \"bad\"}");
        assert_eq!(
            excerpt("x".repeat(1000).as_bytes()).chars().count(),
            MAX_BODY_IN_ERROR + 1
        );
    }
}
