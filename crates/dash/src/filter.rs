//! The `/` filter of any list: a one-line input whose query narrows the list
//! as it is typed, and its widget.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

/// A filter's query and whether it is being typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    query: String,
    /// The cursor's position in `query`, in characters.
    cursor: usize,
    editing: bool,
}

/// What a key did to the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOutcome {
    /// The query changed; the list should be narrowed again.
    Changed,
    /// The key moved the cursor or otherwise changed nothing visible outside.
    Moved,
    /// Typing ended with the query kept.
    Accepted,
    /// Typing ended and the query was cleared.
    Cleared,
    /// The filter does not use this key.
    Ignored,
}

impl Filter {
    /// Starts typing, keeping any query there is.
    pub fn start(&mut self) {
        self.editing = true;
        self.cursor = self.query.chars().count();
    }

    pub fn is_editing(&self) -> bool {
        self.editing
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    /// Whether the filter narrows anything.
    pub fn is_active(&self) -> bool {
        !self.query.is_empty()
    }

    /// Whether `text` passes the filter: it contains every word of the
    /// query, ignoring case. An empty query passes everything.
    pub fn matches(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.query
            .to_lowercase()
            .split_whitespace()
            .all(|word| text.contains(word))
    }

    /// Applies a key typed while editing. Keys are ignored when not editing.
    pub fn handle_key(&mut self, key: KeyEvent) -> FilterOutcome {
        if !self.editing {
            return FilterOutcome::Ignored;
        }
        if key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
        {
            return self.handle_control(key);
        }
        match key.code {
            KeyCode::Enter => {
                self.editing = false;
                FilterOutcome::Accepted
            }
            KeyCode::Esc => {
                self.clear();
                FilterOutcome::Cleared
            }
            KeyCode::Char(c) => {
                let at = self.byte_offset(self.cursor);
                self.query.insert(at, c);
                self.cursor += 1;
                FilterOutcome::Changed
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let at = self.byte_offset(self.cursor);
                self.query.remove(at);
                FilterOutcome::Changed
            }
            KeyCode::Delete if self.cursor < self.query.chars().count() => {
                let at = self.byte_offset(self.cursor);
                self.query.remove(at);
                FilterOutcome::Changed
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                FilterOutcome::Moved
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(self.query.chars().count());
                FilterOutcome::Moved
            }
            KeyCode::Home => {
                self.cursor = 0;
                FilterOutcome::Moved
            }
            KeyCode::End => {
                self.cursor = self.query.chars().count();
                FilterOutcome::Moved
            }
            KeyCode::Backspace | KeyCode::Delete => FilterOutcome::Moved,
            _ => FilterOutcome::Ignored,
        }
    }

    /// The readline keys people reach for in any input line.
    fn handle_control(&mut self, key: KeyEvent) -> FilterOutcome {
        if !key.modifiers.contains(KeyModifiers::CONTROL) {
            return FilterOutcome::Ignored;
        }
        match key.code {
            KeyCode::Char('u') => {
                let at = self.byte_offset(self.cursor);
                self.query.replace_range(..at, "");
                self.cursor = 0;
                FilterOutcome::Changed
            }
            KeyCode::Char('a') => {
                self.cursor = 0;
                FilterOutcome::Moved
            }
            KeyCode::Char('e') => {
                self.cursor = self.query.chars().count();
                FilterOutcome::Moved
            }
            _ => FilterOutcome::Ignored,
        }
    }

    /// Stops typing and forgets the query.
    pub fn clear(&mut self) {
        *self = Filter::default();
    }

    fn byte_offset(&self, chars: usize) -> usize {
        self.query
            .char_indices()
            .nth(chars)
            .map_or(self.query.len(), |(i, _)| i)
    }
}

/// Draws the filter as `/query` with a block cursor while typing, or as
/// `filter: query` once accepted.
impl Widget for &Filter {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let line = if self.editing {
            let at = self.byte_offset(self.cursor);
            let (before, after) = self.query.split_at(at);
            let mut rest = after.chars();
            let under = rest.next().map_or(" ".to_string(), String::from);
            Line::from(vec![
                Span::raw("/").bold(),
                Span::raw(before.to_string()),
                Span::styled(under, Style::new().reversed()),
                Span::raw(rest.as_str().to_string()),
            ])
        } else if self.is_active() {
            Line::from(vec![
                Span::raw("filter: ").dim(),
                Span::raw(self.query.clone()).bold(),
            ])
        } else {
            Line::default()
        };
        line.render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::style::Modifier;

    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(text: &str) -> Filter {
        let mut filter = Filter::default();
        filter.start();
        for c in text.chars() {
            assert_eq!(
                filter.handle_key(key(KeyCode::Char(c))),
                FilterOutcome::Changed
            );
        }
        filter
    }

    fn render(filter: &Filter, width: u16) -> Buffer {
        let area = Rect::new(0, 0, width, 1);
        let mut buf = Buffer::empty(area);
        filter.render(area, &mut buf);
        buf
    }

    fn rendered(filter: &Filter, width: u16) -> String {
        render(filter, width)
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect()
    }

    #[test]
    fn keys_are_ignored_until_the_filter_is_started() {
        let mut filter = Filter::default();
        assert_eq!(
            filter.handle_key(key(KeyCode::Char('x'))),
            FilterOutcome::Ignored
        );
        assert_eq!(filter.query(), "");
    }

    #[test]
    fn typing_narrows_by_every_word_ignoring_case() {
        let filter = typed("Files down");
        assert!(filter.matches("files: connection down, retrying"));
        assert!(!filter.matches("files: connected"));
        assert!(Filter::default().matches("anything"));
    }

    #[test]
    fn enter_keeps_the_query_and_esc_clears_it() {
        let mut filter = typed("db");
        assert_eq!(
            filter.handle_key(key(KeyCode::Enter)),
            FilterOutcome::Accepted
        );
        assert!(!filter.is_editing());
        assert_eq!(filter.query(), "db");
        assert!(filter.is_active());

        filter.start();
        assert_eq!(filter.handle_key(key(KeyCode::Esc)), FilterOutcome::Cleared);
        assert!(!filter.is_active() && !filter.is_editing());
    }

    #[test]
    fn editing_in_the_middle_respects_multibyte_characters() {
        let mut filter = typed("café");
        filter.handle_key(key(KeyCode::Left));
        filter.handle_key(key(KeyCode::Backspace));
        assert_eq!(filter.query(), "caé");
        filter.handle_key(key(KeyCode::Home));
        filter.handle_key(key(KeyCode::Delete));
        assert_eq!(filter.query(), "aé");
        filter.handle_key(key(KeyCode::End));
        filter.handle_key(key(KeyCode::Char('!')));
        assert_eq!(filter.query(), "aé!");
    }

    #[test]
    fn backspace_at_the_start_changes_nothing() {
        let mut filter = typed("x");
        filter.handle_key(key(KeyCode::Home));
        assert_eq!(
            filter.handle_key(key(KeyCode::Backspace)),
            FilterOutcome::Moved
        );
        assert_eq!(filter.query(), "x");
    }

    #[test]
    fn ctrl_u_deletes_to_the_start() {
        let mut filter = typed("print error");
        filter.handle_key(key(KeyCode::Left));
        filter.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(filter.query(), "r");
    }

    #[test]
    fn the_widget_shows_the_cursor_while_typing_and_the_query_after() {
        let mut filter = typed("ab");
        filter.handle_key(key(KeyCode::Left));
        assert_eq!(rendered(&filter, 8), "/ab     ");
        let buf = render(&filter, 8);
        let reversed = |x: u16| buf[(x, 0)].modifier.contains(Modifier::REVERSED);
        assert!(reversed(2) && !reversed(1), "the cursor sits on the b");
        filter.handle_key(key(KeyCode::Enter));
        assert_eq!(rendered(&filter, 12), "filter: ab  ");
        assert_eq!(rendered(&Filter::default(), 4), "    ");
    }
}
