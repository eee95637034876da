//! Short-lived TURN credentials from a shared secret: the TURN REST scheme that coturn's
//! `use-auth-secret` checks. The username is `<unix expiry>:<user>`, the password the base64
//! of HMAC-SHA1(secret, username); the TURN server recomputes it and refuses it after the
//! expiry, so a leaked credential is worth at most its lifetime.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// One TURN credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// Unix seconds after which the TURN server refuses it.
    pub expires: u64,
}

/// A credential for `user` valid until `now + ttl` (unix seconds). `user` must not contain a
/// colon (the scheme's separator); one is replaced.
pub fn credential(secret: &str, user: &str, now: u64, ttl: u64) -> Credential {
    let expires = now.saturating_add(ttl);
    let username = format!("{expires}:{}", user.replace(':', "_"));
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(username.as_bytes());
    let password = data_encoding::BASE64.encode(&mac.finalize().into_bytes());
    Credential {
        username,
        password,
        expires,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_scheme_coturn_checks() {
        // `echo -n "1700003600:alice" | openssl dgst -sha1 -hmac secret -binary | base64`
        let c = credential("secret", "alice", 1_700_000_000, 3600);
        assert_eq!(c.username, "1700003600:alice");
        assert_eq!(c.expires, 1_700_003_600);
        assert_eq!(c.password, "LLPLO4qjdVL2qZhwr3eImhn7J20=");
        assert_eq!(credential("secret", "a:b", 0, 1).username, "1:a_b");
    }
}
