//! The Files tab's state: the directory being browsed, the transfers with
//! their progress, and what its keys ask the file server to do.

use std::path::PathBuf;

use backroom_api::files::{Change, ChangeKind, Entry, Kind};

use crate::filter::Filter;
use crate::keymap::Action;
use crate::outbox::Outlet;
use crate::prompt::Prompt;
use crate::update::Level;
use crate::widgets::Status;

/// How many finished transfers stay on screen.
pub const FINISHED_TRANSFERS_SHOWN: usize = 3;

/// Something the tab asks the file server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// List a directory and make it the one whose changes refresh the list.
    List(String),
    Upload {
        id: u64,
        local: PathBuf,
        remote: String,
    },
    Download {
        id: u64,
        remote: String,
        local: PathBuf,
    },
    Mkdir(String),
    Rename {
        from: String,
        to: String,
    },
    Remove {
        path: String,
        recursive: bool,
    },
    Checksum(String),
}

/// What a message from the files task puts in the Overview's events: each
/// change to the files.
pub fn news(msg: &Msg) -> Option<(Level, String)> {
    let Msg::Changed(change) = msg else {
        return None;
    };
    let what = match change.kind {
        ChangeKind::Created => "created",
        ChangeKind::Modified => "modified",
        ChangeKind::Removed => "removed",
        ChangeKind::Renamed => "renamed",
        ChangeKind::Overflow => return None,
    };
    let text = match &change.to {
        Some(to) => format!("{what} {} → {to}", change.path),
        None => format!("{what} {}", change.path),
    };
    Some((Level::Info, text))
}

/// News from the files task.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Attached(Outlet<Request>),
    /// A directory's entries, as listed (also after a change in it).
    Listing {
        path: String,
        entries: Vec<Entry>,
    },
    /// A transfer moved on: bytes done of the total, if known.
    Progress {
        id: u64,
        done: u64,
        total: u64,
    },
    /// A transfer ended: what happened, or why it failed.
    Finished {
        id: u64,
        result: Result<String, String>,
    },
    /// A request finished: what happened, or the server's error.
    Done(Result<String, String>),
    /// Something changed under the watched root (the listing follows on
    /// its own); for the Overview's events.
    Changed(Change),
    /// The connection broke; the task reconnects.
    Lost(String),
}

/// One upload or download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: u64,
    pub upload: bool,
    pub name: String,
    pub done: u64,
    pub total: u64,
    /// `None` while running.
    pub result: Option<Result<String, String>>,
}

/// What an open prompt is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptFor {
    Upload,
    Download(String),
    Mkdir,
    Rename(String),
}

/// What a key on the Files tab leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    Send(Request),
    /// Send only after a yes: (title, question, request).
    Confirm(String, String, Request),
}

/// The Files tab's state.
#[derive(Debug, Clone, Default)]
pub struct FilesTab {
    /// The directory shown, relative to the root; `""` is the root.
    pub cwd: String,
    pub loaded: bool,
    /// Directories first, then by name.
    pub entries: Vec<Entry>,
    /// The selected entry's name, so that it stays put as the list changes.
    pub selected: Option<String>,
    pub filter: Filter,
    pub prompt: Option<Prompt<PromptFor>>,
    pub transfers: Vec<Transfer>,
    next_transfer: u64,
    pub status: Option<Status>,
    /// Where downloads go unless the prompt says otherwise.
    pub download_dir: PathBuf,
}

/// `dir/name`, or `name` at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The directory above `path`; the root's parent is the root.
pub fn parent(path: &str) -> String {
    path.rsplit_once('/')
        .map_or(String::new(), |(dir, _)| dir.to_string())
}

impl FilesTab {
    pub fn new(download_dir: PathBuf) -> FilesTab {
        FilesTab {
            download_dir,
            ..FilesTab::default()
        }
    }

    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Attached(_) => {}
            Msg::Listing { path, mut entries } => {
                if path != self.cwd {
                    return;
                }
                entries.sort_by(|a, b| {
                    (a.kind != Kind::Dir, &a.name).cmp(&(b.kind != Kind::Dir, &b.name))
                });
                self.entries = entries;
                self.loaded = true;
                self.keep_selection();
            }
            Msg::Progress { id, done, total } => {
                if let Some(t) = self.transfers.iter_mut().find(|t| t.id == id) {
                    t.done = done;
                    t.total = total;
                }
            }
            Msg::Finished { id, result } => {
                if let Some(t) = self.transfers.iter_mut().find(|t| t.id == id) {
                    t.result = Some(result);
                }
                self.trim_transfers();
            }
            Msg::Changed(_) => {}
            Msg::Done(result) => {
                self.status = Some(match result {
                    Ok(text) => Status { ok: true, text },
                    Err(text) => Status { ok: false, text },
                });
            }
            Msg::Lost(_) => self.loaded = false,
        }
    }

    fn trim_transfers(&mut self) {
        let finished = self.transfers.iter().filter(|t| t.result.is_some()).count();
        let mut drop = finished.saturating_sub(FINISHED_TRANSFERS_SHOWN);
        self.transfers.retain(|t| {
            let old = t.result.is_some() && drop > 0;
            if old {
                drop -= 1;
            }
            !old
        });
    }

    /// The entries that pass the filter.
    pub fn visible(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.iter().filter(|e| self.filter.matches(&e.name))
    }

    pub fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_ref()?;
        self.visible().position(|e| &e.name == name)
    }

    pub fn selected_entry(&self) -> Option<&Entry> {
        let name = self.selected.as_ref()?;
        self.entries.iter().find(|e| &e.name == name)
    }

    pub fn keep_selection(&mut self) {
        if self.selected_index().is_none() {
            let first = self.visible().next().map(|e| e.name.clone());
            self.selected = first;
        }
    }

    fn move_selection(&mut self, by: isize) {
        let names: Vec<String> = self.visible().map(|e| e.name.clone()).collect();
        let Some(last) = names.len().checked_sub(1) else {
            return;
        };
        let at = self.selected_index().unwrap_or(0) as isize;
        let to = (at + by).clamp(0, last as isize) as usize;
        self.selected = Some(names[to].clone());
    }

    /// Moves into `path`: the list waits for its listing.
    fn enter(&mut self, path: String) -> Effect {
        self.cwd = path.clone();
        self.loaded = false;
        self.entries.clear();
        self.selected = None;
        self.filter = Filter::default();
        Effect::Send(Request::List(path))
    }

    fn start_transfer(&mut self, upload: bool, name: String) -> u64 {
        self.next_transfer += 1;
        self.transfers.push(Transfer {
            id: self.next_transfer,
            upload,
            name,
            done: 0,
            total: 0,
            result: None,
        });
        self.next_transfer
    }

    /// Runs one of the tab's actions.
    pub fn perform(&mut self, action: Action) -> Effect {
        let selected = self.selected_entry().cloned();
        match action {
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::Filter => self.filter.start(),
            Action::Open => match selected {
                Some(entry) if entry.kind == Kind::Dir => {
                    return self.enter(join(&self.cwd, &entry.name));
                }
                Some(entry) => self.hint(format!(
                    "{} is a file, not a folder: download it instead",
                    entry.name
                )),
                None => {}
            },
            Action::Parent if !self.cwd.is_empty() => {
                let left = self.cwd.rsplit('/').next().unwrap_or("").to_string();
                let effect = self.enter(parent(&self.cwd));
                self.selected = Some(left);
                return effect;
            }
            Action::Upload => {
                self.prompt = Some(Prompt::new(
                    "Upload a local file here",
                    &[("local file", "")],
                    PromptFor::Upload,
                ));
            }
            Action::Download => {
                if let Some(entry) = selected.as_ref().filter(|e| e.kind == Kind::Dir) {
                    self.hint(format!(
                        "{} is a folder: only files download; open it instead",
                        entry.name
                    ));
                }
                if let Some(entry) = selected.filter(|e| e.kind == Kind::File) {
                    let local = self.download_dir.join(&entry.name);
                    self.prompt = Some(Prompt::new(
                        format!("Download {}", entry.name),
                        &[("save as", &local.display().to_string())],
                        PromptFor::Download(join(&self.cwd, &entry.name)),
                    ));
                }
            }
            Action::Mkdir => {
                self.prompt = Some(Prompt::new("New folder", &[("name", "")], PromptFor::Mkdir));
            }
            Action::Rename => {
                if let Some(entry) = selected {
                    self.prompt = Some(Prompt::new(
                        format!("Rename {}", entry.name),
                        &[("new name", &entry.name)],
                        PromptFor::Rename(entry.name.clone()),
                    ));
                }
            }
            Action::Delete => {
                if let Some(entry) = selected {
                    let path = join(&self.cwd, &entry.name);
                    let dir = entry.kind == Kind::Dir;
                    let what = if dir { "folder" } else { "file" };
                    let and_all = if dir { " and all it holds" } else { "" };
                    return Effect::Confirm(
                        format!("Delete {what}"),
                        format!("Delete {path}{and_all}?"),
                        Request::Remove {
                            path,
                            recursive: dir,
                        },
                    );
                }
            }
            Action::Checksum => {
                if let Some(entry) = selected.filter(|e| e.kind == Kind::File) {
                    return Effect::Send(Request::Checksum(join(&self.cwd, &entry.name)));
                }
            }
            _ => {}
        }
        Effect::None
    }

    /// Turns a filled-in prompt into its request, or says what is wrong.
    pub fn finish_prompt(&mut self) -> Option<Request> {
        let prompt = self.prompt.take()?;
        let value = prompt.value(0).to_string();
        if value.is_empty() {
            self.fail("nothing was typed");
            return None;
        }
        match prompt.purpose {
            PromptFor::Upload => {
                let local = PathBuf::from(&value);
                let Some(name) = local.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                    self.fail("give the path of a local file");
                    return None;
                };
                let remote = join(&self.cwd, &name);
                let id = self.start_transfer(true, name);
                Some(Request::Upload { id, local, remote })
            }
            PromptFor::Download(remote) => {
                let name = remote.rsplit('/').next().unwrap_or(&remote).to_string();
                let id = self.start_transfer(false, name);
                Some(Request::Download {
                    id,
                    remote,
                    local: PathBuf::from(value),
                })
            }
            PromptFor::Mkdir if value.contains('/') => {
                self.fail("a folder name has no /");
                None
            }
            PromptFor::Mkdir => Some(Request::Mkdir(join(&self.cwd, &value))),
            PromptFor::Rename(old) if old == value => None,
            PromptFor::Rename(old) => Some(Request::Rename {
                from: join(&self.cwd, &old),
                to: join(&self.cwd, &value),
            }),
        }
    }

    /// Says why a key did nothing here, instead of doing nothing silently.
    fn hint(&mut self, text: String) {
        self.status = Some(Status { ok: false, text });
    }

    fn fail(&mut self, text: &str) {
        self.status = Some(Status {
            ok: false,
            text: text.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_on_a_file_and_download_on_a_folder_say_why_nothing_happens() {
        let entry = |name: &str, kind| Entry {
            name: name.into(),
            kind,
            size: 1,
            modified_ms: 0,
            mode: 0o644,
        };
        let mut tab = FilesTab {
            loaded: true,
            entries: vec![entry("docs", Kind::Dir), entry("a.txt", Kind::File)],
            selected: Some("a.txt".into()),
            ..FilesTab::default()
        };
        assert_eq!(tab.perform(Action::Open), Effect::None);
        let said = tab.status.take().expect("a hint");
        assert_eq!(
            said.text,
            "a.txt is a file, not a folder: download it instead"
        );
        tab.selected = Some("docs".into());
        tab.perform(Action::Download);
        assert!(tab.prompt.is_none());
        let said = tab.status.take().expect("a hint");
        assert!(said.text.starts_with("docs is a folder"), "{said:?}");
    }

    #[test]
    fn a_change_to_the_files_is_news_for_the_overview() {
        let change = |kind, to: Option<&str>| {
            Msg::Changed(Change {
                kind,
                path: "docs/a.txt".into(),
                to: to.map(str::to_string),
                origin: backroom_api::files::Origin::Disk,
            })
        };
        let text = |msg| news(&msg).map(|(_, text)| text);
        assert_eq!(
            text(change(ChangeKind::Created, None)).as_deref(),
            Some("created docs/a.txt")
        );
        assert_eq!(
            text(change(ChangeKind::Renamed, Some("docs/b.txt"))).as_deref(),
            Some("renamed docs/a.txt → docs/b.txt")
        );
        assert_eq!(text(change(ChangeKind::Overflow, None)), None);
    }

    fn entry(name: &str, kind: Kind, size: u64) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size,
            modified_ms: 0,
            mode: 0o644,
        }
    }

    fn loaded() -> FilesTab {
        let mut tab = FilesTab::new(PathBuf::from("/home/me"));
        tab.apply(Msg::Listing {
            path: String::new(),
            entries: vec![
                entry("notes.txt", Kind::File, 10),
                entry("docs", Kind::Dir, 0),
                entry("a.pdf", Kind::File, 99),
            ],
        });
        tab
    }

    fn names(tab: &FilesTab) -> Vec<&str> {
        tab.visible().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn folders_come_first_then_names() {
        assert_eq!(names(&loaded()), ["docs", "a.pdf", "notes.txt"]);
    }

    #[test]
    fn enter_opens_a_folder_and_backspace_returns_to_it() {
        let mut tab = loaded();
        assert_eq!(
            tab.perform(Action::Open),
            Effect::Send(Request::List("docs".into()))
        );
        assert_eq!((tab.cwd.as_str(), tab.loaded), ("docs", false));
        tab.apply(Msg::Listing {
            path: "docs".into(),
            entries: vec![entry("x", Kind::Dir, 0)],
        });
        tab.perform(Action::Open);
        assert_eq!(tab.cwd, "docs/x");
        assert_eq!(
            tab.perform(Action::Parent),
            Effect::Send(Request::List("docs".into()))
        );
        assert_eq!(
            tab.selected.as_deref(),
            Some("x"),
            "the folder left stays selected"
        );
    }

    #[test]
    fn a_listing_of_another_folder_is_ignored() {
        let mut tab = loaded();
        tab.apply(Msg::Listing {
            path: "elsewhere".into(),
            entries: vec![],
        });
        assert_eq!(tab.entries.len(), 3);
    }

    #[test]
    fn deleting_asks_first_and_folders_go_recursively() {
        let mut tab = loaded();
        let Effect::Confirm(_, question, request) = tab.perform(Action::Delete) else {
            panic!("a confirmation expected");
        };
        assert!(question.contains("docs and all it holds"), "{question}");
        assert_eq!(
            request,
            Request::Remove {
                path: "docs".into(),
                recursive: true
            }
        );
    }

    #[test]
    fn upload_and_download_start_transfers_that_track_progress() {
        let mut tab = loaded();
        tab.perform(Action::Upload);
        if let Some(p) = &mut tab.prompt {
            p.fields[0].value = "/tmp/report.pdf".into();
        }
        assert_eq!(
            tab.finish_prompt(),
            Some(Request::Upload {
                id: 1,
                local: "/tmp/report.pdf".into(),
                remote: "report.pdf".into()
            })
        );
        tab.apply(Msg::Progress {
            id: 1,
            done: 50,
            total: 200,
        });
        assert_eq!((tab.transfers[0].done, tab.transfers[0].total), (50, 200));
        tab.perform(Action::Down);
        tab.perform(Action::Download);
        let Some(Request::Download { remote, local, .. }) = tab.finish_prompt() else {
            panic!("a download expected");
        };
        assert_eq!((remote.as_str(), local), ("a.pdf", "/home/me/a.pdf".into()));
    }

    #[test]
    fn finished_transfers_are_bounded() {
        let mut tab = loaded();
        for id in 1..=6 {
            tab.start_transfer(true, format!("f{id}"));
            tab.apply(Msg::Finished {
                id,
                result: Ok("done".into()),
            });
        }
        assert_eq!(tab.transfers.len(), FINISHED_TRANSFERS_SHOWN);
        assert_eq!(tab.transfers[0].name, "f4");
    }

    #[test]
    fn mkdir_and_rename_work_in_the_current_folder() {
        let mut tab = loaded();
        tab.perform(Action::Open);
        tab.perform(Action::Mkdir);
        if let Some(p) = &mut tab.prompt {
            p.fields[0].value = "new".into();
        }
        assert_eq!(tab.finish_prompt(), Some(Request::Mkdir("docs/new".into())));
        tab.apply(Msg::Listing {
            path: "docs".into(),
            entries: vec![entry("old.txt", Kind::File, 1)],
        });
        tab.perform(Action::Rename);
        if let Some(p) = &mut tab.prompt {
            p.fields[0].value = "new.txt".into();
        }
        assert_eq!(
            tab.finish_prompt(),
            Some(Request::Rename {
                from: "docs/old.txt".into(),
                to: "docs/new.txt".into()
            })
        );
    }

    #[test]
    fn paths_join_and_split_at_the_root() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(parent("a/b"), "a");
        assert_eq!(parent("a"), "");
    }
}
