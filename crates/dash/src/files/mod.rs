//! The files server in the client: its command line (`cli`), its tab's state
//! and keys (`tab`), the task that keeps the tab connected (`task`), and
//! the tab's drawing (`view`).

pub mod cli;
pub mod tab;
pub mod task;
pub mod view;
