//! The sessions of the server: one per client connection, with the
//! transaction it holds and the databases on which it has a connection of
//! its own.
//!
//! The runtime gives each connection one `Arc<Identity>`, shared by all its
//! calls, so the Arc's address names the session. Each entry keeps a `Weak`
//! to it: that pins the address (no later connection can reuse it) and tells
//! when the connection is gone, so its connections can be closed and its
//! transaction rolled back.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use backroom_frame::auth::Identity;
use backroom_frame::error::Error;
use parking_lot::{Mutex, MutexGuard};

use crate::engine::{Engine, SessionId};

/// A transaction bound to a session.
#[derive(Clone)]
pub struct Bound {
    pub tx: u64,
    pub engine: Arc<Engine>,
}

struct Entry {
    owner: Weak<Identity>,
    tx: Option<Bound>,
    /// The databases on which the session has a connection of its own.
    pinned: Vec<Arc<Engine>>,
}

/// What a session that ended leaves to clean up.
pub struct Ended {
    pub id: SessionId,
    pub tx: Option<Bound>,
    pub pinned: Vec<Arc<Engine>>,
}

#[derive(Default)]
pub struct Sessions {
    // A std lock: it is never held across an await.
    map: Mutex<HashMap<SessionId, Entry>>,
}

/// The session of the connection that made a call.
pub fn id(identity: &Arc<Identity>) -> SessionId {
    Arc::as_ptr(identity) as SessionId
}

impl Sessions {
    pub fn get(&self, identity: &Arc<Identity>) -> Option<Bound> {
        self.lock().get(&id(identity)).and_then(|e| e.tx.clone())
    }

    /// Binds `tx` to the caller's session, unless it already holds one.
    pub fn bind(&self, identity: &Arc<Identity>, bound: Bound) -> Result<(), Error> {
        let mut map = self.lock();
        let entry = Self::entry(&mut map, identity);
        if let Some(held) = &entry.tx {
            return Err(Error::conflict(format!(
                "this connection already holds transaction {} on {}: commit or roll it back first",
                held.tx, held.engine.name
            )));
        }
        entry.tx = Some(bound);
        Ok(())
    }

    pub fn unbind(&self, identity: &Arc<Identity>, tx: u64) {
        let mut map = self.lock();
        if let Some(entry) = map.get_mut(&id(identity)) {
            if entry.tx.as_ref().is_some_and(|b| b.tx == tx) {
                entry.tx = None;
            }
        }
    }

    /// Records that the session has a connection of its own on `engine`.
    pub fn pin(&self, identity: &Arc<Identity>, engine: &Arc<Engine>) {
        let mut map = self.lock();
        let entry = Self::entry(&mut map, identity);
        if !entry.pinned.iter().any(|e| Arc::ptr_eq(e, engine)) {
            entry.pinned.push(engine.clone());
        }
    }

    /// Removes and returns the sessions whose connections are gone.
    pub fn reap(&self) -> Vec<Ended> {
        let mut map = self.lock();
        let gone: Vec<SessionId> = map
            .iter()
            .filter(|(_, e)| e.owner.strong_count() == 0)
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter()
            .filter_map(|k| {
                map.remove(&k).map(|e| Ended {
                    id: k,
                    tx: e.tx,
                    pinned: e.pinned,
                })
            })
            .collect()
    }

    fn entry<'m>(
        map: &'m mut HashMap<SessionId, Entry>,
        identity: &Arc<Identity>,
    ) -> &'m mut Entry {
        map.entry(id(identity)).or_insert_with(|| Entry {
            owner: Arc::downgrade(identity),
            tx: None,
            pinned: Vec::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Entry>> {
        self.map.lock()
    }
}
