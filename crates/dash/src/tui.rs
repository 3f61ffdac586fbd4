//! The event loop: one `select!` over server updates, terminal input and a
//! slow tick, drawing after each. Generic over the backend, so tests run it
//! on `TestBackend`.

use std::time::Duration;

use crossterm::event::Event as TermEvent;
use futures_util::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use crate::app::{App, Clock};
use crate::update::Update;

/// How often the screen is redrawn with nothing happening, so that
/// countdowns move. Slow on purpose: an idle dashboard should cost nothing.
pub const TICK: Duration = Duration::from_secs(1);

/// Runs the dashboard until the user quits or the terminal's input ends.
pub async fn run<B, E>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut input: E,
    mut updates: mpsc::Receiver<Update>,
) -> anyhow::Result<()>
where
    B: Backend,
    E: Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        app.clock = Clock::now();
        terminal.draw(|frame| frame.render_widget(&*app, frame.area()))?;
        // Server news comes first, so a key acts on the newest state. Updates
        // arrive a few times a second at most, so keys are never starved.
        tokio::select! {
            biased;
            Some(update) = updates.recv() => {
                app.clock = Clock::now();
                app.apply(update);
                // Take whatever else is already waiting, to draw once for all.
                while let Ok(update) = updates.try_recv() {
                    app.apply(update);
                }
            }
            event = input.next() => match event {
                Some(Ok(TermEvent::Key(key))) => {
                    app.clock = Clock::now();
                    app.handle_key(key);
                    app.outbox.flush();
                }
                // A resize, focus or mouse event needs nothing but the redraw.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::Error::new(e).context("reading the terminal failed")),
                None => return Ok(()),
            },
            _ = tick.tick() => {}
        }
        if app.quit {
            return Ok(());
        }
    }
}
