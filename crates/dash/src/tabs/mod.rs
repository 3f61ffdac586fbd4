//! The server tabs' own contents: for each, its state as plain data, the
//! task that talks to its server, and its drawing.
//!
//! A tab's keys never reach the network directly: they queue a request in
//! [`Outbox`], the event loop hands it to the tab's task, and the answer
//! comes back as an update like any other server news.

pub mod db;
pub mod db_task;
pub mod db_ui;
pub mod files;
pub mod files_task;
pub mod files_ui;
pub mod print;
pub mod print_task;
pub mod print_ui;
pub mod prompt;
pub mod proxy;
pub mod proxy_task;
pub mod proxy_ui;

use tokio::sync::mpsc;

/// The result of a tab's last request, shown under its main pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub ok: bool,
    pub text: String,
}

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
    Print(print::Request),
    Db(db::Request),
    Files(files::Request),
}

/// Requests queued by keys, and where each kind goes once its task exists.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    pub queued: Vec<Request>,
    pub print: Option<Outlet<print::Request>>,
    pub db: Option<Outlet<db::Request>>,
    pub files: Option<Outlet<files::Request>>,
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
