//! Which connection holds which interactive transaction.
//!
//! The runtime gives each connection one `Arc<Identity>`, shared by all its
//! calls, so the Arc's address names the connection. Each binding keeps a
//! `Weak` to it: that pins the address (no later connection can reuse it)
//! and tells when the connection is gone, so its transaction can be rolled
//! back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use backroom_frame::auth::Identity;
use backroom_frame::error::Error;

use crate::engine::Engine;

/// A transaction bound to a connection.
#[derive(Clone)]
pub struct Bound {
    pub tx: u64,
    pub engine: Arc<Engine>,
}

struct Entry {
    owner: Weak<Identity>,
    bound: Bound,
}

#[derive(Default)]
pub struct Sessions {
    // A std lock: it is never held across an await.
    map: Mutex<HashMap<usize, Entry>>,
}

fn key(identity: &Arc<Identity>) -> usize {
    Arc::as_ptr(identity) as usize
}

impl Sessions {
    pub fn get(&self, identity: &Arc<Identity>) -> Option<Bound> {
        self.lock().get(&key(identity)).map(|e| e.bound.clone())
    }

    /// Binds `tx` to the caller's connection, unless it already holds one.
    pub fn bind(&self, identity: &Arc<Identity>, bound: Bound) -> Result<(), Error> {
        let mut map = self.lock();
        if let Some(held) = map.get(&key(identity)) {
            return Err(Error::conflict(format!(
                "this connection already holds transaction {} on {}: commit or roll it back first",
                held.bound.tx, held.bound.engine.name
            )));
        }
        map.insert(
            key(identity),
            Entry {
                owner: Arc::downgrade(identity),
                bound,
            },
        );
        Ok(())
    }

    pub fn unbind(&self, identity: &Arc<Identity>, tx: u64) {
        let mut map = self.lock();
        if map.get(&key(identity)).is_some_and(|e| e.bound.tx == tx) {
            map.remove(&key(identity));
        }
    }

    /// Removes and returns the transactions of connections that are gone.
    pub fn reap(&self) -> Vec<Bound> {
        let mut map = self.lock();
        let gone: Vec<usize> = map
            .iter()
            .filter(|(_, e)| e.owner.strong_count() == 0)
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter()
            .filter_map(|k| map.remove(&k).map(|e| e.bound))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
