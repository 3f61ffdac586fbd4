//! Tokens, roles and identities: who a connection is and what it may do.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorCode};

/// What a caller may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "read-only" => Ok(Role::ReadOnly),
            "read-write" => Ok(Role::ReadWrite),
            "admin" => Ok(Role::Admin),
            _ => Err(format!(
                "unknown role {s:?}: use read-only, read-write or admin"
            )),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub role: Role,
}

impl Identity {
    /// Fails with `forbidden` unless the caller holds at least `role`.
    pub fn require(&self, role: Role) -> Result<(), Error> {
        if self.role >= role {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::Forbidden,
            format!(
                "user {} is {}, this needs {}",
                self.user,
                self.role.as_str(),
                role.as_str()
            ),
        ))
    }
}

/// One configured user: a name, the SHA-256 of their token, and a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// `sha256:` followed by 64 lowercase hex digits; see [`hash_token`].
    pub token_sha256: String,
    pub role: Role,
}

/// The form in which a token is stored in config: `sha256:<hex>`.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Checks tokens against the configured users.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    users: Vec<(User, [u8; 32])>,
}

impl Auth {
    /// Validates every stored hash up front, so a typo fails at startup.
    pub fn new(users: Vec<User>) -> Result<Auth, String> {
        let users = users
            .into_iter()
            .map(|u| {
                let digest = parse_hash(&u.token_sha256).ok_or_else(|| {
                    format!(
                        "user {}: token_sha256 must be \"sha256:\" and 64 hex digits",
                        u.name
                    )
                })?;
                Ok((u, digest))
            })
            .collect::<Result<_, String>>()?;
        Ok(Auth { users })
    }

    /// Open access: nobody is configured, so everyone is let in.
    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    /// A server with no users may listen on loopback only, unless told
    /// `insecure`, because anyone who can reach it would be an admin.
    pub fn check_bind(&self, addr: SocketAddr, insecure: bool) -> Result<(), String> {
        if self.is_open() && !addr.ip().is_loopback() && !insecure {
            return Err(format!(
                "refusing to listen on {addr} without auth: configure users with tokens, \
                 bind to loopback, or pass --insecure"
            ));
        }
        Ok(())
    }

    /// Finds the user a token belongs to.
    ///
    /// Every stored hash is compared, in constant time, whatever matches
    /// first, so timing reveals neither the token nor which user holds it.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Identity, Error> {
        if self.is_open() {
            return Ok(Identity {
                user: "anonymous".into(),
                role: Role::Admin,
            });
        }
        let Some(token) = token else {
            return Err(Error::new(
                ErrorCode::Unauthorized,
                "this server needs a token",
            ));
        };
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (user, digest) in &self.users {
            if bool::from(presented.ct_eq(digest)) {
                found = Some(user);
            }
        }
        found
            .map(|u| Identity {
                user: u.name.clone(),
                role: u.role,
            })
            .ok_or_else(|| Error::new(ErrorCode::Unauthorized, "the token is not valid"))
    }
}

/// The users a running server checks new connections against, replaceable
/// while it runs (for example on SIGHUP, to rotate tokens).
///
/// Clones share the same users: the caller keeps one clone and calls
/// [`AuthHandle::replace`], and the server sees the new users from its next
/// handshake on. Connections already open keep the identity they were given.
#[derive(Debug, Clone, Default)]
pub struct AuthHandle {
    // A standard lock: it is held only to clone or swap the `Arc`, never
    // across an `.await` or while a token is checked.
    current: Arc<RwLock<Arc<Auth>>>,
}

impl AuthHandle {
    pub fn new(auth: Auth) -> AuthHandle {
        AuthHandle {
            current: Arc::new(RwLock::new(Arc::new(auth))),
        }
    }

    /// The users in force now.
    pub fn current(&self) -> Arc<Auth> {
        self.current.read().clone()
    }

    /// Puts `auth` in force for every handshake from now on.
    ///
    /// The server checks [`Auth::check_bind`] only when it starts, so the
    /// caller decides whether a replacement with no users is acceptable.
    pub fn replace(&self, auth: Auth) {
        *self.current.write() = Arc::new(auth);
    }
}

impl From<Auth> for AuthHandle {
    fn from(auth: Auth) -> AuthHandle {
        AuthHandle::new(auth)
    }
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(vec![
            User {
                name: "ann".into(),
                token_sha256: hash_token("ann-secret"),
                role: Role::Admin,
            },
            User {
                name: "bob".into(),
                token_sha256: hash_token("bob-secret"),
                role: Role::ReadOnly,
            },
        ])
        .expect("valid users")
    }

    #[test]
    fn a_good_token_yields_its_user_and_role() {
        let id = auth().authenticate(Some("bob-secret")).expect("bob");
        assert_eq!(id.user, "bob");
        assert_eq!(id.role, Role::ReadOnly);
    }

    #[test]
    fn a_bad_or_missing_token_is_unauthorized() {
        let a = auth();
        assert_eq!(
            a.authenticate(Some("nope")).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            a.authenticate(None).unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn a_malformed_hash_fails_at_startup() {
        let err = Auth::new(vec![User {
            name: "x".into(),
            token_sha256: "plain".into(),
            role: Role::Admin,
        }])
        .unwrap_err();
        assert!(err.contains("user x"), "{err}");
    }

    #[test]
    fn open_access_is_refused_beyond_loopback_unless_insecure() {
        let open = Auth::default();
        let public: SocketAddr = "0.0.0.0:7701".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:7701".parse().expect("addr");
        assert!(open.check_bind(public, false).is_err());
        assert!(open.check_bind(public, true).is_ok());
        assert!(open.check_bind(local, false).is_ok());
        assert!(auth().check_bind(public, false).is_ok());
    }

    #[test]
    fn a_replaced_auth_is_seen_by_every_clone_of_the_handle() {
        let handle = AuthHandle::new(auth());
        let server_side = handle.clone();
        handle.replace(Auth::new(Vec::new()).expect("no users"));
        assert!(server_side.current().is_open());
    }

    #[test]
    fn roles_are_ordered() {
        let bob = Identity {
            user: "bob".into(),
            role: Role::ReadOnly,
        };
        assert!(bob.require(Role::ReadOnly).is_ok());
        assert_eq!(
            bob.require(Role::ReadWrite).unwrap_err().code,
            ErrorCode::Forbidden
        );
    }
}
