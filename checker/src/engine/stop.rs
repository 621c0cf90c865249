//! SIGTERM and SIGINT, caught from the start: keepalived sends SIGTERM when
//! a check script runs past its timeout, an operator ends a daemon with it.
//! Every flow ends at its next wait with [`Error::Interrupted`], and the
//! entries it registered are removed on the way out.

use std::cell::Cell;

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::sys::signals::Signals;

#[derive(Default)]
pub(crate) struct Stop {
    signal: Cell<Option<&'static str>>,
    notify: Notify,
}

impl Stop {
    /// Catches the signals (from now on they no longer kill the process)
    /// and returns the future that turns them into a stop; the engine runs
    /// it as a task. Inside the runtime.
    pub(crate) fn catch(stop: std::rc::Rc<Stop>) -> Result<impl Future<Output = ()>> {
        let signals = Signals::catch(&[libc::SIGTERM, libc::SIGINT])
            .map_err(|e| Error::io("catching SIGTERM and SIGINT", e))?;
        Ok(async move {
            let name = match signals.recv().await {
                libc::SIGINT => "SIGINT",
                _ => "SIGTERM",
            };
            stop.raise(name);
        })
    }

    /// Ends every flow at its next wait, naming `why`.
    pub(crate) fn raise(&self, why: &'static str) {
        if self.signal.get().is_none() {
            self.signal.set(Some(why));
        }
        self.notify.notify_waiters();
    }

    /// `Err(Interrupted)` once stopped.
    pub(crate) fn check(&self) -> Result<()> {
        match self.signal.get() {
            Some(name) => Err(Error::Interrupted(name)),
            None => Ok(()),
        }
    }

    /// Whether a stop was raised, and why.
    pub(crate) fn raised(&self) -> Option<&'static str> {
        self.signal.get()
    }

    /// Resolves with `Err(Interrupted)` when the stop is raised (at once if
    /// it was). The caller selects it beside what it waits for.
    pub(crate) async fn stopped(&self) -> Error {
        let notified = self.notify.notified();
        if let Some(name) = self.signal.get() {
            return Error::Interrupted(name);
        }
        notified.await;
        Error::Interrupted(self.signal.get().unwrap_or("a stop"))
    }
}
