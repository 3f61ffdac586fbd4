//! Who may do what where: roles from the runtime, narrowed by per-path rules,
//! and per-user quotas.

use backroom_frame::Error;
use backroom_frame::auth::{Identity, Role};
use serde::Deserialize;

use crate::paths::RelPath;

/// What a user may do with a path. Ordered: each includes the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    None,
    Read,
    Write,
}

impl Access {
    fn of_role(role: Role) -> Access {
        match role {
            Role::ReadOnly => Access::Read,
            Role::ReadWrite | Role::Admin => Access::Write,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Access::None => "no access",
            Access::Read => "read access",
            Access::Write => "write access",
        }
    }
}

/// One per-path rule of the config file: it caps the access of `users` (or
/// of everyone, with `"*"`) to `path` and everything beneath it. The most
/// specific rule that names a user wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub path: String,
    pub users: Vec<String>,
    pub access: Access,
}

/// A per-user quota: the bytes stored under `path` (default: the whole root)
/// may not exceed `bytes` through this user's writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub user: String,
    #[serde(default)]
    pub path: String,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
struct Rule {
    path: RelPath,
    users: Vec<String>,
    access: Access,
}

impl Rule {
    fn applies_to(&self, user: &str) -> bool {
        self.users.iter().any(|u| u == "*" || u == user)
    }

    /// Whether the rule names the user, rather than everyone: at the same
    /// path, such a rule wins over a `"*"` one.
    fn names(&self, user: &str) -> bool {
        self.users.iter().any(|u| u == user)
    }
}

/// A parsed quota.
#[derive(Debug, Clone)]
pub struct Quota {
    pub path: RelPath,
    pub bytes: u64,
}

/// The rules and quotas, checked at startup.
#[derive(Debug, Clone, Default)]
pub struct Rights {
    rules: Vec<Rule>,
    quotas: Vec<(String, Quota)>,
}

impl Rights {
    pub fn new(rules: &[RuleConfig], quotas: &[QuotaConfig]) -> Result<Rights, String> {
        let rules = rules
            .iter()
            .map(|r| {
                let path = RelPath::parse(&r.path)
                    .map_err(|e| format!("rule for {:?}: {}", r.path, e.message))?;
                Ok(Rule {
                    path,
                    users: r.users.clone(),
                    access: r.access,
                })
            })
            .collect::<Result<_, String>>()?;
        let quotas = quotas
            .iter()
            .map(|q| {
                let path = RelPath::parse(&q.path)
                    .map_err(|e| format!("quota of {}: {}", q.user, e.message))?;
                Ok((
                    q.user.clone(),
                    Quota {
                        path,
                        bytes: q.bytes,
                    },
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Rights { rules, quotas })
    }

    /// The user's access to `path`: their role's, capped by the most specific
    /// rule at or above `path` that applies to them (the longest path; at the
    /// same path, one that names them over one for `"*"`).
    pub fn access(&self, who: &Identity, path: &RelPath) -> Access {
        let role = Access::of_role(who.role);
        let rule = self
            .rules
            .iter()
            .filter(|r| r.applies_to(&who.user) && path.starts_with(&r.path))
            .max_by_key(|r| (r.path.components().len(), r.names(&who.user)));
        rule.map_or(role, |r| role.min(r.access))
    }

    /// The least access the user has anywhere in the subtree at `path`: what
    /// a recursive remove or a move of the whole subtree needs.
    pub fn tree_access(&self, who: &Identity, path: &RelPath) -> Access {
        self.rules
            .iter()
            .filter(|r| r.applies_to(&who.user) && r.path.starts_with(path))
            .map(|r| self.access(who, &r.path))
            .fold(self.access(who, path), Access::min)
    }

    /// Fails with `forbidden` unless the user has `needed` on `path`.
    pub fn require(&self, who: &Identity, path: &RelPath, needed: Access) -> Result<(), Error> {
        check(self.access(who, path), needed, who, path)
    }

    /// Like [`Rights::require`], for every path in the subtree.
    pub fn require_tree(
        &self,
        who: &Identity,
        path: &RelPath,
        needed: Access,
    ) -> Result<(), Error> {
        check(self.tree_access(who, path), needed, who, path)
    }

    /// The user's quotas that contain `path`: a write there must fit in
    /// every one of them.
    pub fn quotas(&self, user: &str, path: &RelPath) -> Vec<&Quota> {
        self.quotas
            .iter()
            .filter(|(u, q)| u == user && path.starts_with(&q.path))
            .map(|(_, q)| q)
            .collect()
    }
}

fn check(have: Access, needed: Access, who: &Identity, path: &RelPath) -> Result<(), Error> {
    if have >= needed {
        return Ok(());
    }
    let shown = if path.is_root() {
        "/".to_owned()
    } else {
        path.to_string()
    };
    Err(Error::forbidden(format!(
        "user {} has {} to {shown}, this needs {}",
        who.user,
        have.as_str(),
        needed.as_str()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str, role: Role) -> Identity {
        Identity {
            user: user.into(),
            role,
        }
    }

    fn path(p: &str) -> RelPath {
        RelPath::parse(p).expect("valid")
    }

    fn rights() -> Rights {
        let rules = [
            RuleConfig {
                path: "finance".into(),
                users: vec!["*".into()],
                access: Access::None,
            },
            RuleConfig {
                path: "finance/reports".into(),
                users: vec!["bob".into()],
                access: Access::Read,
            },
            RuleConfig {
                path: "shared/archive".into(),
                users: vec!["*".into()],
                access: Access::Read,
            },
        ];
        Rights::new(&rules, &[]).expect("valid rules")
    }

    #[test]
    fn rules_narrow_roles_and_the_most_specific_wins() {
        let r = rights();
        let bob = who("bob", Role::ReadWrite);
        assert_eq!(r.access(&bob, &path("notes.txt")), Access::Write);
        assert_eq!(r.access(&bob, &path("finance/x")), Access::None);
        assert_eq!(r.access(&bob, &path("finance/reports/q1")), Access::Read);
        let ann = who("ann", Role::Admin);
        assert_eq!(r.access(&ann, &path("finance/reports/q1")), Access::None);
    }

    #[test]
    fn a_rule_naming_the_user_beats_one_for_everyone_in_any_order() {
        let named = rule_for("x", &["ann"], Access::Write);
        let everyone = rule_for("x", &["*"], Access::None);
        let ann = who("ann", Role::Admin);
        for rules in [[named.clone(), everyone.clone()], [everyone, named]] {
            let r = Rights::new(&rules, &[]).expect("valid");
            assert_eq!(r.access(&ann, &path("x/y")), Access::Write);
            assert_eq!(r.access(&who("bob", Role::Admin), &path("x")), Access::None);
        }
    }

    fn rule_for(p: &str, users: &[&str], access: Access) -> RuleConfig {
        RuleConfig {
            path: p.into(),
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            access,
        }
    }

    #[test]
    fn rules_never_widen_a_role() {
        let r = Rights::new(
            &[RuleConfig {
                path: "".into(),
                users: vec!["*".into()],
                access: Access::Write,
            }],
            &[],
        )
        .expect("valid");
        assert_eq!(
            r.access(&who("cy", Role::ReadOnly), &path("a")),
            Access::Read
        );
    }

    #[test]
    fn tree_access_sees_rules_below_the_path() {
        let r = rights();
        let bob = who("bob", Role::ReadWrite);
        assert_eq!(r.tree_access(&bob, &path("shared")), Access::Read);
        assert_eq!(r.tree_access(&bob, &RelPath::root()), Access::None);
        assert!(r.require_tree(&bob, &path("home"), Access::Write).is_ok());
    }

    #[test]
    fn a_rule_that_escapes_the_root_is_a_startup_error() {
        let err = Rights::new(
            &[RuleConfig {
                path: "../x".into(),
                users: vec![],
                access: Access::None,
            }],
            &[],
        )
        .expect_err("refused");
        assert!(err.contains("../x"), "{err}");
    }

    #[test]
    fn every_quota_that_contains_a_path_applies() {
        let quotas = [
            QuotaConfig {
                user: "ann".into(),
                path: "".into(),
                bytes: 100,
            },
            QuotaConfig {
                user: "ann".into(),
                path: "home/ann".into(),
                bytes: 10,
            },
        ];
        let r = Rights::new(&[], &quotas).expect("valid");
        let limits =
            |p: &str| -> Vec<u64> { r.quotas("ann", &path(p)).iter().map(|q| q.bytes).collect() };
        assert_eq!(limits("home/ann/x"), [100, 10]);
        assert_eq!(limits("other"), [100]);
        assert!(r.quotas("bob", &path("other")).is_empty());
    }
}
