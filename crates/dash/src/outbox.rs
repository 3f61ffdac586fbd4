//! The requests a tab's keys ask for, on their way to the tab's task.
//!
//! A tab's keys never reach the network directly: they queue a request in
//! [`Outbox`], the event loop hands it to the tab's task, and the answer
//! comes back as an update like any other server news.

use tokio::sync::mpsc;

use crate::{db, files, print};

/// The sending end of a tab task's request channel. Compared by channel, so
/// updates carrying one stay comparable in tests.
#[derive(Debug, Clone)]
pub struct Outlet<T>(pub mpsc::UnboundedSender<T>);

impl<T> PartialEq for Outlet<T> {
    fn eq(&self, other: &Outlet<T>) -> bool {
        self.0.same_channel(&other.0)
    }
}

/// A request a key asked for, waiting for the loop to hand it to its task.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Print(print::tab::Request),
    Db(db::tab::Request),
    Files(files::tab::Request),
}

/// Requests queued by keys, and where each kind goes once its task exists.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    pub queued: Vec<Request>,
    pub print: Option<Outlet<print::tab::Request>>,
    pub db: Option<Outlet<db::tab::Request>>,
    pub files: Option<Outlet<files::tab::Request>>,
}

impl Outbox {
    /// Hands every queued request to its task. A request whose task is not
    /// attached yet is dropped; the tab already says it is not connected.
    pub fn flush(&mut self) {
        for request in self.queued.drain(..) {
            match request {
                Request::Print(request) => {
                    if let Some(outlet) = &self.print {
                        let _ = outlet.0.send(request);
                    }
                }
                Request::Files(request) => {
                    if let Some(outlet) = &self.files {
                        let _ = outlet.0.send(request);
                    }
                }
                Request::Db(request) => {
                    if let Some(outlet) = &self.db {
                        let _ = outlet.0.send(request);
                    }
                }
            }
        }
    }
}
