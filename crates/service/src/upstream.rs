//! What the clients of third-party APIs (the LLM, Wispro, the bank) share
//! when an answer is an error.

/// Longest part of an error body kept in an error message.
pub const EXCERPT_CHARS: usize = 300;

/// The start of an error body, on one line: whitespace folded, at most
/// [`EXCERPT_CHARS`] characters and an ellipsis, so a large HTML error page
/// does not flood a log line or a row's error column.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_cut_to_one_short_line() {
        assert_eq!(excerpt(b"{\"error\":\n  \"bad\"}"), "{\"error\": \"bad\"}");
        assert_eq!(
            excerpt("x".repeat(1000).as_bytes()).chars().count(),
            EXCERPT_CHARS + 1
        );
    }
}
