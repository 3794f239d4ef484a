//! Webhook bodies as Postgres `jsonb`. The text is cast in SQL (`$n::text::jsonb`), so numbers
//! never pass through `f64`; the one thing jsonb refuses in valid JSON, the escape `\u0000`, is
//! handled here.

use std::borrow::Cow;

/// The escape jsonb rejects (SQLSTATE 22P05) although it is valid JSON.
const NUL_ESCAPE: &str = "\\u0000";
/// What a NUL becomes in stored JSON: U+FFFD REPLACEMENT CHARACTER, the usual stand-in.
const REPLACEMENT_ESCAPE: &str = "\\ufffd";

/// How a body is stored in a `jsonb` column plus, where that is not the body itself, its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredBody<'a> {
    /// JSON text for `$n::text::jsonb`; `None` when the body is not JSON at all.
    pub json: Option<Cow<'a, str>>,
    /// The exact bytes, only when `json` is missing or differs from the body.
    pub raw: Option<&'a [u8]>,
}

impl<'a> StoredBody<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        let text = match std::str::from_utf8(body) {
            Ok(text) if is_json(text) => text,
            _ => {
                return Self {
                    json: None,
                    raw: Some(body),
                };
            }
        };
        let json = jsonb_safe(text);
        let raw = matches!(json, Cow::Owned(_)).then_some(body);
        Self {
            json: Some(json),
            raw,
        }
    }

    /// The JSON text for a `jsonb` column, if the body is JSON.
    pub fn json_str(&self) -> Option<&str> {
        self.json.as_deref()
    }
}

/// A body's JSON text for a `jsonb` column (entity `raw`), `None` if it is not UTF-8.
pub fn jsonb_text(body: &[u8]) -> Option<Cow<'_, str>> {
    std::str::from_utf8(body).ok().map(jsonb_safe)
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// Valid JSON text that jsonb accepts: every `\u0000` escape becomes `\ufffd`; every other byte
/// is kept, so ids, decimals and key order are untouched. Borrowed when there is nothing to do.
pub fn jsonb_safe(text: &str) -> Cow<'_, str> {
    if !text.contains(NUL_ESCAPE) {
        return Cow::Borrowed(text);
    }
    // In JSON a backslash only ever starts an escape inside a string, so walking escape by escape
    // tells `\u0000` from `\\u0000` (an escaped backslash followed by the letters `u0000`).
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at..];
        if let Some(after) = escape.strip_prefix(NUL_ESCAPE) {
            out.push_str(REPLACEMENT_ESCAPE);
            rest = after;
        } else {
            // A backslash and the one character it escapes (the rest of `\uXXXX` is plain text).
            let len = escape[1..].chars().next().map_or(1, |c| 1 + c.len_utf8());
            out.push_str(&escape[..len]);
            rest = &escape[len..];
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_json_is_stored_as_sent() {
        let body = br#"{"id": 820982911946154508, "total_price": "414.95"}"#;
        let stored = StoredBody::new(body);
        assert!(matches!(stored.json, Some(Cow::Borrowed(_))));
        assert_eq!(stored.raw, None);
    }

    #[test]
    fn nul_escapes_are_replaced_and_the_exact_body_kept() {
        let body = br#"{"note": "a\u0000b", "n": 1}"#;
        let stored = StoredBody::new(body);
        assert_eq!(stored.json_str(), Some(r#"{"note": "a\ufffdb", "n": 1}"#));
        assert_eq!(stored.raw, Some(&body[..]));
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_not_a_nul() {
        let text = r#"{"path": "C:\\u0000", "x": "\"\u0000"}"#;
        assert_eq!(
            jsonb_safe(text),
            r#"{"path": "C:\\u0000", "x": "\"\ufffd"}"#
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_only_as_bytes() {
        for body in [
            &b"not json"[..],
            &[0xff, 0xfe][..],
            &b"{\"a\": \"\x00\"}"[..],
        ] {
            let stored = StoredBody::new(body);
            assert_eq!(stored.json, None);
            assert_eq!(stored.raw, Some(body));
        }
    }
}
