//! Basic auth against the web config's bcrypt hashes.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), so a verification runs on a
//! blocking thread, at most [`BCRYPTS_AT_ONCE`] at a time, and its outcome is remembered by a
//! salted SHA-256 of the user, the password and the stored hash: Prometheus scraping every 15 s
//! with the same credentials costs one bcrypt verification, not one per scrape. A changed hash
//! (a rotated password) makes a new key, so the old password stops working at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use ring::digest;
use tokio::sync::Semaphore;

use crate::limits::{AUTH_CACHE_ENTRIES, BCRYPTS_AT_ONCE, BCRYPT_WAIT};
use crate::sync::Recover;

/// A bcrypt hash (of a password nobody has) to verify against for unknown users, so that an
/// unknown user costs as much time as a known one and user names cannot be told apart by timing.
const UNKNOWN_USER_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// What a request's credentials come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Right credentials.
    Allowed,
    /// None, malformed, or wrong.
    Denied,
    /// Every verification slot stayed busy for [`BCRYPT_WAIT`]: try again later.
    Busy,
}

/// Verifies credentials and remembers the outcomes. One per telemetry; it outlives reloads.
#[derive(Debug)]
pub(crate) struct Verifier {
    salt: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], bool>>,
    slots: Arc<Semaphore>,
}

impl Verifier {
    pub(crate) fn new() -> Self {
        let mut salt = [0u8; 32];
        // A fixed salt would only make the cache keys predictable; they never leave the process.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt);
        Verifier {
            salt,
            cache: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(BCRYPTS_AT_ONCE)),
        }
    }

    /// Checks an `Authorization` header against `users` (name to bcrypt hash).
    pub(crate) async fn check(
        &self,
        users: &HashMap<String, String>,
        authorization: Option<&HeaderValue>,
    ) -> Verdict {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Verdict::Denied;
        };
        let (known, hash) = match users.get(&user) {
            Some(h) => (true, h.clone()),
            None => (false, UNKNOWN_USER_HASH.to_owned()),
        };
        let key = self.key(&user, &password, &hash);
        if let Some(&ok) = self.cache.lock().recover().get(&key) {
            return if ok && known {
                Verdict::Allowed
            } else {
                Verdict::Denied
            };
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout(BCRYPT_WAIT, Arc::clone(&self.slots).acquire_owned()).await
        else {
            return Verdict::Busy;
        };
        let verified = tokio::task::spawn_blocking(move || {
            let ok = bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false);
            drop(permit);
            ok
        })
        .await
        .unwrap_or(false);
        {
            let mut cache = self.cache.lock().recover();
            if cache.len() >= AUTH_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, verified);
        }
        if verified && known {
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }

    fn key(&self, user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&self.salt);
        for part in [user, password, hash] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.lock().recover().len()
    }
}

/// `Basic base64(user:password)` into its two parts.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Standard base64 (RFC 4648 section 4), padding optional, as clients send it.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    const STANDARD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn header(user: &str, password: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "Basic {}",
            encode(format!("{user}:{password}").as_bytes())
        ))
        .unwrap()
    }

    #[test]
    fn credentials_parse() {
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic YWxhZGRpbjpvcGVuc2VzYW1l")),
            Some(("aladdin".into(), "opensesame".into()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("basic dTpwOnE=")),
            Some(("u".into(), "p:q".into()))
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basic bm9jb2xvbg=="] {
            assert_eq!(
                basic_credentials(&HeaderValue::from_static(bad)),
                None,
                "{bad}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn right_wrong_unknown_and_cached() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let users: HashMap<String, String> = [("prometheus".to_owned(), hash)].into();
        let v = Verifier::new();
        let right = header("prometheus", "secret");
        assert_eq!(v.check(&users, Some(&right)).await, Verdict::Allowed);
        assert_eq!(v.cached(), 1);
        assert_eq!(v.check(&users, Some(&right)).await, Verdict::Allowed);
        assert_eq!(v.cached(), 1, "the second check is answered from the cache");
        assert_eq!(
            v.check(&users, Some(&header("prometheus", "guess"))).await,
            Verdict::Denied
        );
        assert_eq!(
            v.check(&users, Some(&header("mallory", "secret"))).await,
            Verdict::Denied
        );
        assert_eq!(v.check(&users, None).await, Verdict::Denied);
        // A rotated password: the old one is refused at once, though it was cached.
        let rotated: HashMap<String, String> =
            [("prometheus".to_owned(), bcrypt::hash("new", 4).unwrap())].into();
        assert_eq!(v.check(&rotated, Some(&right)).await, Verdict::Denied);
        assert_eq!(
            v.check(&rotated, Some(&header("prometheus", "new"))).await,
            Verdict::Allowed
        );
    }

    proptest! {
        #[test]
        fn base64_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(base64_decode(&encode(&bytes)), Some(bytes));
        }

        #[test]
        fn credentials_never_panic(s in "[ -~]{0,80}") {
            if let Ok(v) = HeaderValue::from_str(&s) {
                let _ = basic_credentials(&v);
            }
        }
    }
}
