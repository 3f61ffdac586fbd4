//! Basic proxy authentication against users whose passwords are stored as
//! argon2 hashes (PHC strings, `$argon2id$...`).
//!
//! Argon2 is slow on purpose, so a verified `Proxy-Authorization` value is
//! remembered (by its SHA-256) until the next reload: a browser sends the same
//! header on every request, and only the first one pays for the hash.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use backroom_daemon::face::parse_basic;
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How many verified credentials are remembered before the cache starts over.
const CACHE_LIMIT: usize = 4096;

/// One proxy user, as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// An argon2 PHC string, as printed by `backroom-proxy --hash-password`.
    pub password_hash: String,
}

/// The `[auth]` section of the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Shown to clients in `Proxy-Authenticate`.
    pub realm: Option<String>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No users are configured: everyone may use the proxy.
    Open,
    User(String),
    /// No credentials were sent.
    Missing,
    /// Credentials were sent and are wrong; the user name, when readable, is
    /// kept for the log.
    Failed(Option<String>),
}

/// The configured users and the cache of verified credentials.
#[derive(Debug)]
pub struct ProxyAuth {
    realm: String,
    users: HashMap<String, String>,
    verified: Mutex<HashMap<[u8; 32], String>>,
    /// Bounds the argon2 work in flight, so a flood of wrong passwords
    /// queues up instead of taking every core.
    verifying: Arc<tokio::sync::Semaphore>,
}

impl ProxyAuth {
    /// Parses every hash up front, so a bad one fails the start or the reload.
    pub fn new(config: &AuthConfig) -> Result<ProxyAuth, String> {
        let mut users = HashMap::new();
        for user in &config.users {
            if user.name.is_empty() || user.name.contains(':') {
                return Err(format!(
                    "proxy user {:?}: a name must be non-empty and hold no ':'",
                    user.name
                ));
            }
            PasswordHash::new(&user.password_hash).map_err(|e| {
                format!(
                    "proxy user {}: password_hash is not an argon2 PHC string: {e}",
                    user.name
                )
            })?;
            if users
                .insert(user.name.clone(), user.password_hash.clone())
                .is_some()
            {
                return Err(format!("proxy user {} is listed twice", user.name));
            }
        }
        Ok(ProxyAuth {
            realm: config
                .realm
                .clone()
                .unwrap_or_else(|| "backroom-proxy".into()),
            users,
            verified: Mutex::new(HashMap::new()),
            verifying: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        })
    }

    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The value of `Proxy-Authenticate` on a 407.
    pub fn challenge(&self) -> String {
        format!(
            "Basic realm=\"{}\", charset=\"UTF-8\"",
            self.realm.replace(['"', '\\'], "")
        )
    }

    fn cached(&self, key: &[u8; 32]) -> Option<String> {
        // A panic while holding the lock leaves a usable map: recover it.
        let cache = self.verified.lock();
        cache.get(key).cloned()
    }

    fn remember(&self, key: [u8; 32], user: &str) {
        let mut cache = self.verified.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, user.to_owned());
    }

    /// Checks a `Proxy-Authorization` header value. The argon2 work runs on
    /// the blocking pool, never on an async worker.
    pub async fn check(self: &Arc<Self>, header: Option<&[u8]>) -> Verdict {
        if self.is_open() {
            return Verdict::Open;
        }
        let Some(header) = header else {
            return Verdict::Missing;
        };
        let key: [u8; 32] = Sha256::digest(header).into();
        if let Some(user) = self.cached(&key) {
            return Verdict::User(user);
        }
        let Some((user, password)) = parse_basic(header) else {
            return Verdict::Failed(None);
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return Verdict::Failed(Some(user));
        };
        let Ok(_permit) = self.verifying.acquire().await else {
            return Verdict::Failed(Some(user));
        };
        let verify = tokio::task::spawn_blocking(move || verify(&password, &hash));
        if matches!(verify.await, Ok(true)) {
            self.remember(key, &user);
            Verdict::User(user)
        } else {
            Verdict::Failed(Some(user))
        }
    }
}

fn verify(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Hashes a password for the config file with argon2id's default cost.
pub fn hash_password(password: &str, salt: &[u8]) -> Result<String, String> {
    hash_password_with(
        password,
        salt,
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
    )
}

/// Hashes with an explicit memory cost (KiB) and time cost; the cost is kept
/// in the hash, so verification needs no settings.
pub fn hash_password_with(
    password: &str,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
) -> Result<String, String> {
    let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(salt).map_err(|e| e.to_string())?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}").into_bytes()
    }

    fn auth() -> Arc<ProxyAuth> {
        let hash = hash_password_with("s3cret", b"0123456789abcdef", 64, 1).expect("hash");
        Arc::new(
            ProxyAuth::new(&AuthConfig {
                realm: None,
                users: vec![UserConfig {
                    name: "ann".into(),
                    password_hash: hash,
                }],
            })
            .expect("auth"),
        )
    }

    #[tokio::test]
    async fn the_right_password_names_the_user() {
        let auth = auth();
        let header = basic("ann", "s3cret");
        assert_eq!(auth.check(Some(&header)).await, Verdict::User("ann".into()));
        // The second check is answered from the cache, with the same result.
        assert_eq!(auth.check(Some(&header)).await, Verdict::User("ann".into()));
    }

    #[tokio::test]
    async fn wrong_missing_or_garbled_credentials_fail() {
        let auth = auth();
        assert_eq!(auth.check(None).await, Verdict::Missing);
        assert_eq!(
            auth.check(Some(&basic("ann", "nope"))).await,
            Verdict::Failed(Some("ann".into()))
        );
        assert_eq!(
            auth.check(Some(&basic("bob", "s3cret"))).await,
            Verdict::Failed(Some("bob".into()))
        );
        assert_eq!(
            auth.check(Some(b"Basic !!!notbase64")).await,
            Verdict::Failed(None)
        );
        assert_eq!(auth.check(Some(b"Bearer abc")).await, Verdict::Failed(None));
    }

    #[test]
    fn a_plaintext_password_in_the_config_is_refused() {
        let err = ProxyAuth::new(&AuthConfig {
            realm: None,
            users: vec![UserConfig {
                name: "ann".into(),
                password_hash: "hunter2".into(),
            }],
        })
        .expect_err("refused");
        assert!(err.contains("ann"), "{err}");
    }

    #[tokio::test]
    async fn no_users_means_open() {
        let auth = Arc::new(ProxyAuth::new(&AuthConfig::default()).expect("auth"));
        assert_eq!(auth.check(None).await, Verdict::Open);
    }
}
