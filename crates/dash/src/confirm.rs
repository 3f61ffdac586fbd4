//! The confirmation dialog that stands before every destructive action: its
//! state, its keys and its widget.

use crossterm::event::KeyEvent;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Widget, Wrap};

use crate::keymap::{Action, Keymap};

/// A question waiting for yes or no, and what to do on yes.
///
/// `T` is the action the caller runs once confirmed, so the dialog holds it
/// as plain data and never runs anything itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm<T> {
    pub title: String,
    pub question: String,
    /// Run on yes.
    pub on_yes: T,
}

/// What a key press did to an open dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// Yes: the caller runs this and closes the dialog.
    Yes(T),
    /// No: the caller closes the dialog.
    No,
    /// Not an answer; the dialog stays open and swallows the key, so a
    /// stray key never reaches the screen behind it.
    Pending,
}

impl<T: Clone> Confirm<T> {
    pub fn new(title: impl Into<String>, question: impl Into<String>, on_yes: T) -> Confirm<T> {
        Confirm {
            title: title.into(),
            question: question.into(),
            on_yes,
        }
    }

    /// Reads a key as an answer. Only the confirm keys say yes, so Enter or
    /// a held-down key cannot destroy anything by accident.
    pub fn answer(&self, keymap: &Keymap, key: KeyEvent) -> Answer<T> {
        match keymap.dialog_action(key) {
            Some(Action::Confirm) => Answer::Yes(self.on_yes.clone()),
            Some(Action::Cancel) => Answer::No,
            _ => Answer::Pending,
        }
    }
}

/// The dialog as drawn: the question and the keys that answer it.
#[derive(Debug)]
pub struct ConfirmDialog<'a, T> {
    pub confirm: &'a Confirm<T>,
    pub keymap: &'a Keymap,
}

impl<T> ConfirmDialog<'_, T> {
    /// The dialog's box within `area`: centred, at most 50 columns wide.
    pub fn area(area: Rect) -> Rect {
        let width = area.width.min(50);
        let height = area.height.min(7);
        Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + (area.height - height) / 2,
            width,
            height,
        }
    }
}

impl<T> Widget for ConfirmDialog<'_, T> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let area = ConfirmDialog::<T>::area(area);
        Clear.render(area, buf);
        let block = Block::bordered()
            .border_type(BorderType::Double)
            .border_style(Style::new().red())
            .title(Line::from(format!(" {} ", self.confirm.title)).bold());
        let keys = Line::from(vec![
            Span::raw(self.keymap.label(Action::Confirm)).bold().red(),
            Span::raw(" yes   "),
            Span::raw(self.keymap.label(Action::Cancel)).bold(),
            Span::raw(" no"),
        ]);
        let text = vec![
            Line::from(self.confirm.question.clone()),
            Line::default(),
            keys,
        ];
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true })
            .block(block)
            .render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crossterm::event::{KeyCode, KeyModifiers};

    use super::*;
    use crate::keymap::KeySpec;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn dialog() -> Confirm<&'static str> {
        Confirm::new("Delete", "Delete report.pdf?", "delete report.pdf")
    }

    #[test]
    fn the_confirm_key_answers_yes_with_the_action() {
        let answer = dialog().answer(&Keymap::default(), key('y'));
        assert_eq!(answer, Answer::Yes("delete report.pdf"));
    }

    #[test]
    fn n_and_esc_answer_no() {
        let keymap = Keymap::default();
        assert_eq!(dialog().answer(&keymap, key('n')), Answer::No);
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(dialog().answer(&keymap, esc), Answer::No);
    }

    #[test]
    fn enter_and_other_keys_leave_the_question_open() {
        let keymap = Keymap::default();
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(dialog().answer(&keymap, enter), Answer::Pending);
        assert_eq!(dialog().answer(&keymap, key('q')), Answer::Pending);
    }

    #[test]
    fn remapped_confirm_keys_are_honoured() {
        let table = BTreeMap::from([("confirm".to_string(), KeySpec::One("enter".into()))]);
        let keymap = Keymap::with_overrides(&table).expect("valid");
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(
            dialog().answer(&keymap, enter),
            Answer::Yes("delete report.pdf")
        );
        assert_eq!(dialog().answer(&keymap, key('y')), Answer::Pending);
    }

    #[test]
    fn the_widget_shows_the_question_and_its_keys_over_what_is_behind() {
        let area = Rect::new(0, 0, 60, 9);
        let mut buf = Buffer::empty(area);
        for x in 0..area.width {
            for y in 0..area.height {
                buf[(x, y)].set_symbol("#");
            }
        }
        let confirm = dialog();
        let keymap = Keymap::default();
        ConfirmDialog {
            confirm: &confirm,
            keymap: &keymap,
        }
        .render(area, &mut buf);
        let rows: Vec<String> = (0..area.height)
            .map(|y| (0..area.width).map(|x| buf[(x, y)].symbol()).collect())
            .collect();
        let screen = rows.join("\n");
        assert!(screen.contains(" Delete "), "{screen}");
        assert!(screen.contains("Delete report.pdf?"), "{screen}");
        assert!(screen.contains("y yes   n/esc no"), "{screen}");
        assert!(
            rows[0].chars().all(|c| c == '#'),
            "outside the box is untouched"
        );
        assert!(!rows[4].contains("##########"), "inside the box is cleared");
    }
}
