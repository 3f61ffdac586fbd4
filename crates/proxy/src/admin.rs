//! The admin port's service: `stats`, the live access `log`, `tunnels`,
//! `close_tunnel` and `reload`, over the frame protocol.

use std::sync::Arc;

use backroom_api::proxy::{CloseTunnel, Reloaded, method};
use backroom_frame::Error;
use backroom_frame::auth::Role;
use backroom_frame::body;
use backroom_frame::server::{Call, Reply, Service, Vital};
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use crate::Shared;
use crate::config::{FileConfig, Policy};

pub struct Admin {
    pub shared: Arc<Shared>,
}

impl Service for Admin {
    async fn call(&self, call: Call) -> Result<Reply, Error> {
        match call.method.as_str() {
            method::STATS => {
                call.identity.require(Role::ReadOnly)?;
                let () = call.args()?;
                Reply::value(&self.shared.stats.snapshot())
            }
            method::LOG => {
                call.identity.require(Role::ReadOnly)?;
                let () = call.args()?;
                self.log()
            }
            method::TUNNELS => {
                call.identity.require(Role::ReadOnly)?;
                let () = call.args()?;
                Reply::value(&self.shared.tunnels.list())
            }
            method::CLOSE_TUNNEL => {
                call.identity.require(Role::Admin)?;
                let CloseTunnel { id } = call.args()?;
                if !self.shared.tunnels.close(id) {
                    return Err(Error::not_found(format!("no open tunnel has id {id}")));
                }
                Reply::value(&())
            }
            method::RELOAD => {
                call.identity.require(Role::Admin)?;
                let () = call.args()?;
                Reply::value(&reload(&self.shared).await?)
            }
            other => Err(Error::unknown_method(other)),
        }
    }

    fn vitals(&self) -> Vec<Vital> {
        self.shared.stats.vitals()
    }
}

impl Admin {
    /// The latest records as the head, then every record from then on. A
    /// subscriber that falls a whole buffer behind skips ahead rather than
    /// holding the proxy back.
    fn log(&self) -> Result<Reply, Error> {
        let (recent, receiver) = self.shared.log.subscribe();
        let events = stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(record) => return Some((body::encode(&*record), receiver)),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "a log subscriber fell behind");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Ok(Reply::Subscription {
            head: body::encode(&recent),
            events: Box::pin(events),
        })
    }
}

/// Re-reads the ACL and proxy users from the config file; open connections
/// and tunnels carry on, and each new request sees the new policy. On any
/// error the old policy stays. The admin `reload` method and SIGHUP both
/// come here.
pub(crate) async fn reload(shared: &Shared) -> Result<Reloaded, Error> {
    let Some(path) = shared.config_path.clone() else {
        return Err(Error::bad_request(
            "the proxy was started without --config, so there is nothing to reload",
        ));
    };
    // Reading and hashing-checking the file is blocking work.
    let policy = tokio::task::spawn_blocking(move || {
        let file = FileConfig::load(&path)?;
        Policy::new(&file.proxy.acl, &file.proxy.auth)
    })
    .await
    .map_err(|e| Error::internal(format!("reload failed: {e}")))?
    .map_err(|e| Error::bad_request(format!("reload refused, the old policy stays: {e}")))?;
    let (client_allow, client_deny) = policy.acl.client_counts();
    let reloaded = Reloaded {
        rules: policy.acl.rule_count() as u64,
        users: policy.auth.user_count() as u64,
        client_allow: client_allow as u64,
        client_deny: client_deny as u64,
    };
    shared.set_policy(policy);
    tracing::info!(?reloaded, "reloaded the ACL and proxy users");
    Ok(reloaded)
}
