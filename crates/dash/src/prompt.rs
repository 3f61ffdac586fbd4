//! A small form of one or more text fields, typed into at the bottom of a
//! tab: a local path to upload, a priority, a new name.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One labelled field and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: String,
    pub value: String,
}

/// A form being filled in; `T` says what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt<T> {
    pub title: String,
    pub fields: Vec<Field>,
    /// The field being typed into.
    pub focus: usize,
    pub purpose: T,
}

/// What a key did to a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptOutcome {
    /// Still typing.
    Editing,
    /// Enter on the last field: the form is done.
    Submitted,
    /// Esc: the form is dropped.
    Cancelled,
}

impl<T> Prompt<T> {
    /// A form with the given fields, each with its starting text.
    pub fn new(title: impl Into<String>, fields: &[(&str, &str)], purpose: T) -> Prompt<T> {
        Prompt {
            title: title.into(),
            fields: fields
                .iter()
                .map(|(label, value)| Field {
                    label: (*label).into(),
                    value: (*value).into(),
                })
                .collect(),
            focus: 0,
            purpose,
        }
    }

    /// The text of field `i`, trimmed.
    pub fn value(&self, i: usize) -> &str {
        self.fields.get(i).map_or("", |f| f.value.trim())
    }

    /// Applies a key. Enter and Tab move to the next field, Enter on the
    /// last one submits; Shift-Tab goes back; Esc cancels.
    pub fn handle_key(&mut self, key: KeyEvent) -> PromptOutcome {
        let last = self.fields.len().saturating_sub(1);
        match key.code {
            KeyCode::Esc => return PromptOutcome::Cancelled,
            KeyCode::Enter if self.focus >= last => return PromptOutcome::Submitted,
            KeyCode::Enter | KeyCode::Tab | KeyCode::Down => {
                self.focus = (self.focus + 1).min(last)
            }
            KeyCode::BackTab | KeyCode::Up => self.focus = self.focus.saturating_sub(1),
            KeyCode::Backspace => {
                if let Some(field) = self.fields.get_mut(self.focus) {
                    field.value.pop();
                }
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                if let Some(field) = self.fields.get_mut(self.focus) {
                    field.value.clear();
                }
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if let Some(field) = self.fields.get_mut(self.focus) {
                    field.value.push(c);
                }
            }
            _ => {}
        }
        PromptOutcome::Editing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn enter_moves_through_the_fields_then_submits() {
        let mut prompt = Prompt::new("Submit", &[("file", ""), ("priority", "50")], ());
        for c in "a.txt".chars() {
            prompt.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(
            prompt.handle_key(key(KeyCode::Enter)),
            PromptOutcome::Editing
        );
        prompt.handle_key(key(KeyCode::Backspace));
        prompt.handle_key(key(KeyCode::Char('9')));
        assert_eq!(
            prompt.handle_key(key(KeyCode::Enter)),
            PromptOutcome::Submitted
        );
        assert_eq!((prompt.value(0), prompt.value(1)), ("a.txt", "59"));
    }

    #[test]
    fn esc_cancels_and_ctrl_u_erases() {
        let mut prompt = Prompt::new("Move", &[("printer", "lp")], ());
        prompt.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(prompt.value(0), "");
        assert_eq!(
            prompt.handle_key(key(KeyCode::Esc)),
            PromptOutcome::Cancelled
        );
    }
}
