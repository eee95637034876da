//! Browser session ids (the original's `client-<ms>-<9 base36 chars>`), validated so that an id
//! is always a safe NATS subject token.

use std::fmt;

/// A validated browser session id; only [`SessionId::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

/// A session id refused by [`SessionId::parse`], holding the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session id {0:?}: expected 1-64 characters of A-Z, a-z, 0-9, '-' and '_'")]
pub struct InvalidSessionId(pub String);

impl SessionId {
    /// Checks an id sent by a browser: 1-64 characters of `A-Z`, `a-z`, `0-9`, `-` and `_`.
    pub fn parse(s: &str) -> Result<Self, InvalidSessionId> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidSessionId(s.to_owned()))
        }
    }

    /// The id as text, e.g. to build the NATS subject that carries the session's signalling.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_ids_pass_and_subject_breakers_do_not() {
        assert!(SessionId::parse("client-1640995200000-k3j9x0abc").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", &"x".repeat(65), "ü"] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
