//! Frames in and out of the interface for one check process: the capture
//! (our XDP slot, or an AF_PACKET socket with `--xdp off`), an AF_PACKET
//! socket to send, and a wait on the capture's readiness, a timer, or a
//! signal to stop (SIGTERM, SIGINT).

use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use checker_common::FlowKey;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::egress::Egress;
use crate::error::{Error, Result};
use crate::packet::PacketSocket;
use crate::trace::Tracer;
use crate::xdp::Slot;

/// Where our replies come from.
pub enum Capture {
    /// The XDP program copies our flows' frames into the slot's ring; the
    /// kernel never sees our TCP replies.
    Xdp(Box<Slot>),
    /// A socket that copies every frame of the interface (`--xdp off`); the
    /// kernel sees our replies too.
    Packet(PacketSocket),
}

impl Capture {
    fn fd(&self) -> RawFd {
        match self {
            Capture::Xdp(slot) => slot.as_raw_fd(),
            Capture::Packet(socket) => socket.as_raw_fd(),
        }
    }
}

pub struct Link {
    // Declared before `capture`: deregistered from the reactor before the
    // fd it watches is closed.
    watch: AsyncFd<Watch>,
    capture: Capture,
    tx: PacketSocket,
    /// What a frame we send may carry; checked on every send.
    egress: Egress,
    /// The interface's name, for error messages.
    iface: String,
    tracer: Tracer,
    stop: Stop,
    /// Receive buffer of the `--xdp off` capture.
    buf: Vec<u8>,
}

/// SIGTERM and SIGINT, caught from the start of a check (keepalived sends
/// SIGTERM when a check script runs past its timeout): the check ends at
/// the next wait, its flow entry removed by the drops on the way out.
pub struct Stop {
    term: Signal,
    int: Signal,
}

impl Stop {
    /// Must be called inside the tokio runtime; from then on the signals
    /// no longer kill the process.
    pub fn catch() -> Result<Stop> {
        let register = |kind| signal(kind).map_err(|e| Error::io("catching SIGTERM and SIGINT", e));
        Ok(Stop {
            term: register(SignalKind::terminate())?,
            int: register(SignalKind::interrupt())?,
        })
    }

    /// Resolves when either signal arrives, with its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

impl Link {
    /// Must be called inside the tokio runtime.
    pub fn new(
        capture: Capture,
        tx: PacketSocket,
        egress: Egress,
        iface: &str,
        tracer: Tracer,
        stop: Stop,
    ) -> Result<Link> {
        // SAFETY: the fd belongs to `capture`, which is stored beside the
        // AsyncFd, outlives it (field order) and is never replaced.
        let watch =
            unsafe { AsyncFd::register_with_interest(Watch(capture.fd()), Interest::READABLE) }
                .map_err(|e| Error::io("registering the capture fd", e.into_parts().1))?;
        Ok(Link {
            watch,
            capture,
            tx,
            egress,
            iface: iface.to_string(),
            tracer,
            stop,
            buf: Vec::new(),
        })
    }

    /// Routes the frames of `key` to us. With `--xdp off` every frame comes
    /// anyway. False if another live process holds the same key.
    pub fn register(&mut self, key: FlowKey) -> Result<bool> {
        match &mut self.capture {
            Capture::Xdp(slot) => slot.register(key),
            Capture::Packet(_) => Ok(true),
        }
    }

    pub fn unregister(&mut self, key: &FlowKey) {
        if let Capture::Xdp(slot) = &mut self.capture {
            slot.unregister(key);
        }
    }

    /// Calls `f` with every frame captured so far.
    pub fn receive(&mut self, mut f: impl FnMut(&[u8])) -> Result<()> {
        let Link {
            capture,
            tracer,
            buf,
            iface,
            ..
        } = self;
        match capture {
            Capture::Xdp(slot) => slot.drain(|frame| {
                tracer.received(frame);
                f(frame);
            }),
            Capture::Packet(socket) => {
                buf.resize(65536, 0);
                loop {
                    match socket.recv(buf) {
                        Ok(n) => f(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            return Err(Error::on_interface(iface, "receiving frames", e));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends one frame, if it obeys the [`Egress`] rule.
    pub fn send(&mut self, frame: &[u8]) -> Result<()> {
        if let Err(why) = self.egress.check(frame) {
            return Err(Error::Refused(format!(
                "refused to send a frame on {}: {why}",
                self.iface
            )));
        }
        self.tracer.sent(frame);
        self.tx
            .send(frame)
            .map_err(|e| Error::on_interface(&self.iface, "sending a frame", e))
    }

    /// Traces a received frame that the caller found to be ours (the
    /// `--xdp off` capture sees every frame, so it cannot trace them all).
    pub fn trace_received(&mut self, frame: &[u8]) {
        if matches!(self.capture, Capture::Packet(_)) {
            self.tracer.received(frame);
        }
    }

    /// Waits until a frame may have arrived or `until`, whichever is first.
    /// Never sleeps on a fixed period. A stop signal ends the wait with
    /// [`Error::Interrupted`].
    pub async fn wait(&mut self, until: Instant) -> Result<()> {
        tokio::select! {
            name = self.stop.recv() => return Err(Error::Interrupted(name)),
            ready = self.watch.readable() => {
                let mut guard = ready.map_err(|e| Error::io("waiting for frames", e))?;
                // Cleared before the caller drains: a frame arriving after
                // this raises readiness again.
                guard.clear_ready();
            }
            _ = tokio::time::sleep_until(until.into()) => {}
        }
        Ok(())
    }
}

/// The capture's fd for tokio's reactor.
struct Watch(RawFd);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
