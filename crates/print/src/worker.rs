//! One worker per printer: takes the next job, drives the device, records the
//! outcome, and waits out the backoff after a failure.

use std::sync::Arc;
use std::time::Duration;

use backroom_api::print::Event;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::device::{Device, Failure, Work};
use crate::queue::Progress;
use crate::service::Shared;

/// How long a worker waits before it tries the database again after it
/// failed.
const DATABASE_RETRY: Duration = Duration::from_secs(1);

/// Runs `printer` until `stop`. A job printing at `stop` stays `printing` in
/// the database: the next start settles it by the error policy.
pub async fn run(
    shared: Arc<Shared>,
    printer: String,
    device: Device,
    waker: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let name = printer.clone();
        let taken = shared
            .with_queue(move |q, now, ev| q.take_next(&name, now, ev))
            .await;
        let dispatch = match taken {
            Ok(Some(dispatch)) => dispatch,
            Ok(None) => {
                tokio::select! {
                    () = waker.notified() => continue,
                    () = stop.cancelled() => return,
                }
            }
            Err(error) => {
                tracing::error!(%printer, %error, "cannot take the next job");
                tokio::select! {
                    () = tokio::time::sleep(DATABASE_RETRY) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        let id = dispatch.job.id;
        let work = Work {
            id,
            name: dispatch.job.name.clone(),
            copies: dispatch.job.copies,
            document: shared.docs.join(&dispatch.job.doc),
        };
        tracing::debug!(%printer, id, attempt = dispatch.job.attempts, "printing");
        let events = shared.events.clone();
        let report = move |p: Progress| {
            let _ = events.send(Event::Progress {
                id,
                bytes_done: p.bytes,
                pages_done: p.pages,
            });
        };
        let (progress, outcome) = tokio::select! {
            printed = device.print(&work, &dispatch.cancel, &report) => printed,
            () = stop.cancelled() => return,
        };
        let outcome = match outcome {
            Ok(()) => Ok(()),
            // The job is already recorded as cancelled; this only frees the
            // printer.
            Err(Failure::Cancelled) => Err("cancelled".to_owned()),
            Err(Failure::Device(message)) => Err(message),
        };
        let name = printer.clone();
        let finished = shared
            .with_queue(move |q, now, ev| q.finish(&name, id, progress, outcome, now, ev))
            .await;
        let backoff = match finished {
            Ok(backoff) => backoff,
            Err(error) => {
                tracing::error!(%printer, id, %error, "cannot record the end of a job");
                Some(DATABASE_RETRY)
            }
        };
        if let Some(backoff) = backoff {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return,
            }
            let name = printer.clone();
            let ended = shared
                .with_queue(move |q, _, ev| {
                    q.end_backoff(&name, ev);
                    Ok(())
                })
                .await;
            if let Err(error) = ended {
                tracing::error!(%printer, %error, "cannot end a backoff");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use crate::order::Aging;
    use crate::queue::{Layout, Policy, Queue};
    use crate::service::Clock;
    use crate::store::Store;
    use backroom_api::print::{JobState, SubmitArgs};

    async fn submit(shared: &Arc<Shared>, name: &str, priority: u8, pages: usize) -> u64 {
        let doc = format!("{name}.prn");
        let data = vec![b'x'; pages * crate::device::SIM_PAGE_BYTES as usize];
        std::fs::write(shared.docs.join(&doc), &data).expect("document");
        let mut args = SubmitArgs::new(name);
        args.priority = Some(priority);
        let arrival = crate::queue::Arrival {
            args,
            owner: "ann".into(),
            doc,
            size: data.len() as u64,
        };
        shared.enqueue(arrival).await.expect("queued").id
    }

    /// A sim printer at 60 pages a minute and aging of 100 s, on paused time.
    #[tokio::test(start_paused = true)]
    async fn aging_lifts_a_starved_job_above_a_newer_higher_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(&docs).expect("docs");
        let store = Store::open(&dir.path().join("queue.db")).expect("store");
        let layout = Layout {
            printers: vec![("lp".into(), "sim:60".into())],
            ..Layout::default()
        };
        let policy = Policy {
            aging: Aging {
                max_wait_ms: 100_000,
            },
            ..Policy::default()
        };
        let clock = Clock::new();
        let queue = Queue::open(store, layout, policy, clock.now_ms()).expect("queue");
        let shared = Arc::new(Shared::new(queue, docs, clock, 1));
        let mut events = shared.events.subscribe();
        let device = Device::open(DeviceSpec::Sim {
            pages_per_minute: 60,
        })
        .expect("sim");
        let stop = CancellationToken::new();
        let worker = tokio::spawn(run(
            shared.clone(),
            "lp".into(),
            device,
            shared.wakers[0].clone(),
            stop.clone(),
        ));
        let long = submit(&shared, "long", 100, 200).await;
        let starved = submit(&shared, "starved", 1, 1).await;
        let mut newer = None;
        let mut order = Vec::new();
        while order.len() < 3 {
            match events.recv().await.expect("event") {
                // Halfway through the long job, a higher job arrives.
                Event::Progress { id, pages_done, .. } if id == long && pages_done == 150 => {
                    newer = Some(submit(&shared, "newer", 60, 1).await);
                }
                Event::Job { job } if job.state == JobState::Completed => order.push(job.id),
                _ => {}
            }
        }
        let newer = newer.expect("submitted");
        // Without aging, priority 60 would beat priority 1; after 200 s of
        // waiting the starved job stands at 100 and goes first.
        assert_eq!(order, [long, starved, newer]);
        stop.cancel();
        worker.await.expect("worker");
    }
}
