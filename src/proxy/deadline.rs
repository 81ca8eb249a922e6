//! Upstream deadlines without a timer per request.
//!
//! A tokio timer costs a lock and a timer-wheel insertion when it is armed and a removal
//! when it is dropped: on the pass-through path that was as much as all of envd's own
//! header rewriting. A timer moved to a later deadline while it is still armed costs one
//! atomic update instead (the wheel notices the new deadline when the old one comes round).
//! So finished requests leave their timer to the next request to the same upstream, which
//! moves it forward: under steady traffic timers are armed once and only moved.
//!
//! The spares are an upstream's, not a thread's: a timer belongs to the runtime that made
//! it, and an upstream is served by one runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// Spare timers kept: as many as requests in flight to one upstream under heavy load;
/// beyond that a finished request's timer is dropped.
const SPARE_TIMERS: usize = 1024;

/// Timers left by finished requests.
#[derive(Default)]
pub struct Timers(Mutex<Vec<Pin<Box<Sleep>>>>);

/// Runs `future` until `deadline`: its output, or `None` if the deadline came first.
pub async fn within<F: Future>(timers: &Timers, deadline: Instant, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer = Timer::at(timers, deadline);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer.poll(cx).map(|()| None)
    })
    .await
}

/// A timer borrowed from the spares (or new), given back when dropped.
struct Timer<'a> {
    timers: &'a Timers,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<'a> Timer<'a> {
    fn at(timers: &'a Timers, deadline: Instant) -> Timer<'a> {
        let spare = crate::server::lock(&timers.0).pop();
        let sleep = match spare {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Timer {
            timers,
            sleep: Some(sleep),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else {
            return;
        };
        let mut spare = crate::server::lock(&self.timers.0);
        if spare.len() < SPARE_TIMERS {
            spare.push(sleep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lock_len(timers: &Timers) -> usize {
        crate::server::lock(&timers.0).len()
    }

    #[tokio::test(start_paused = true)]
    async fn answers_before_the_deadline_and_none_after_even_with_a_reused_timer() {
        let timers = Timers::default();
        for _ in 0..3 {
            let start = Instant::now();
            let quick = within(&timers, start + Duration::from_secs(30), async { 7 }).await;
            assert_eq!(quick, Some(7));
            let slow = within(
                &timers,
                start + Duration::from_secs(30),
                tokio::time::sleep(Duration::from_secs(60)),
            )
            .await;
            assert_eq!(slow, None);
            assert_eq!(
                start.elapsed(),
                Duration::from_secs(30),
                "cut at the deadline"
            );
        }
        assert_eq!(lock_len(&timers), 1, "one timer, reused");
    }
}
