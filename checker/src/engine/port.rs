//! One interface as the engine's flows share it: one capture (our XDP
//! slot, or an AF_PACKET socket with `--xdp off`), one AF_PACKET socket to
//! send, the inboxes of the registered flows, and the real servers' MACs.
//!
//! One task per port ([`Port::dispatch`]) waits on the capture, sorts each
//! frame to its flow's inbox ([`demux`](crate::wire::demux)) as a [`Bytes`] (the
//! one copy: out of the ring, whose record must be released), and wakes
//! that flow. Flows send through [`Port::send`], which enforces the
//! [`Egress`] rule on every frame.

// unsafe: the AF_PACKET socket's readiness (epoll on its fd).
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use checker_common::FlowKey;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::neighbour::Neighbours;
use super::stop::Stop;
use crate::engine::trace::Tracer;
use crate::error::{Error, Result};
use crate::sys::netdev::NetDev;
use crate::sys::packet::PacketSocket;
use crate::wire::demux;
use crate::wire::egress::Egress;
use crate::xdp::Slot;

/// Where our replies come from.
pub(crate) enum Capture {
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

pub(crate) struct Port {
    // Declared before `capture`: deregistered from the reactor before the
    // fd it watches is closed.
    watch: AsyncFd<Watch>,
    capture: RefCell<Capture>,
    tx: PacketSocket,
    pub(crate) dev: NetDev,
    tracer: RefCell<Tracer>,
    inboxes: RefCell<HashMap<FlowKey, Rc<Inbox>>>,
    pub(crate) neighbours: RefCell<Neighbours>,
    /// Why the port stopped working (its capture failed, or its interface
    /// went away), once it has: every wait of its flows fails with this,
    /// and the engine opens a new port for the next flow.
    failed: RefCell<Option<String>>,
    /// Receive buffer of the `--xdp off` capture.
    buf: RefCell<Vec<u8>>,
    /// Frames captured that no flow of ours owned (late replies of ended
    /// flows, or anything with `--xdp off`).
    pub(crate) strays: std::cell::Cell<u64>,
}

/// The frames captured for one flow, waiting for it.
#[derive(Default)]
pub(crate) struct Inbox {
    frames: RefCell<VecDeque<Bytes>>,
    ready: Notify,
}

impl Inbox {
    /// The frames received so far, oldest first.
    pub(crate) fn take(&self) -> VecDeque<Bytes> {
        std::mem::take(&mut *self.frames.borrow_mut())
    }

    fn push(&self, frame: Bytes) {
        self.frames.borrow_mut().push_back(frame);
        // A permit is kept when the flow is not waiting yet: no wake-up lost.
        self.ready.notify_one();
    }
}

/// A flow key routed to this process: its frames go to `inbox` until this
/// is dropped, which removes the entry (map and inbox).
pub(crate) struct Registration {
    port: Rc<Port>,
    key: FlowKey,
    pub(crate) inbox: Rc<Inbox>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.port.inboxes.borrow_mut().remove(&self.key);
        if let Capture::Xdp(slot) = &mut *self.port.capture.borrow_mut() {
            slot.unregister(&self.key);
        }
    }
}

impl Port {
    /// Must be called inside the runtime.
    pub(crate) fn new(
        dev: NetDev,
        capture: Capture,
        tx: PacketSocket,
        tracer: Tracer,
    ) -> Result<Port> {
        // SAFETY: the fd belongs to `capture`, which is stored beside the
        // AsyncFd, outlives it (field order) and is never replaced.
        let watch =
            unsafe { AsyncFd::register_with_interest(Watch(capture.fd()), Interest::READABLE) }
                .map_err(|e| Error::io("registering the capture fd", e.into_parts().1))?;
        Ok(Port {
            watch,
            capture: RefCell::new(capture),
            tx,
            dev,
            tracer: RefCell::new(tracer),
            inboxes: RefCell::default(),
            neighbours: RefCell::default(),
            failed: RefCell::default(),
            buf: RefCell::default(),
            strays: Default::default(),
        })
    }

    /// Routes the frames of `key` to a new inbox. `None` if the key is
    /// taken: by another live process (XDP), or by another flow here.
    pub(crate) fn register(self: &Rc<Port>, key: FlowKey) -> Result<Option<Registration>> {
        self.register_into(key, &Rc::new(Inbox::default()))
    }

    /// Routes the frames of `key` to `inbox` (a flow that takes replies
    /// under two keys: a UDP check's from the VIP and from the real
    /// server's own address). `None` if the key is taken.
    pub(crate) fn register_into(
        self: &Rc<Port>,
        key: FlowKey,
        inbox: &Rc<Inbox>,
    ) -> Result<Option<Registration>> {
        if self.inboxes.borrow().contains_key(&key) {
            return Ok(None);
        }
        if let Capture::Xdp(slot) = &mut *self.capture.borrow_mut()
            && !slot.register(key)?
        {
            return Ok(None);
        }
        self.inboxes.borrow_mut().insert(key, inbox.clone());
        Ok(Some(Registration {
            port: self.clone(),
            key,
            inbox: inbox.clone(),
        }))
    }

    /// Sends one frame, if it obeys `egress`.
    pub(crate) fn send(&self, frame: &[u8], egress: &Egress) -> Result<()> {
        if let Err(why) = egress.check(frame) {
            return Err(Error::Refused(format!(
                "refused to send a frame on {}: {why}",
                self.dev.name
            )));
        }
        self.tracer.borrow_mut().sent(frame);
        self.tx.send(frame).map_err(|e| {
            // ENXIO/ENODEV: the interface this socket was bound to is gone
            // (deleted; one made again under its name has a new index).
            // The port is of no use any more: its flows stop waiting, and
            // the engine opens a new port for the next flow. ENETDOWN is
            // not that: the same interface comes up again with the port.
            if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) {
                self.fail(format!("{} is gone", self.dev.name));
            }
            Error::on_interface(&self.dev.name, "sending a frame", e)
        })
    }

    /// Why this port stopped working, if it has.
    pub(crate) fn failed(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Waits until `inbox` has frames, `until`, or a stop; an error if the
    /// capture failed.
    pub(crate) async fn wait(&self, inbox: &Inbox, stop: &Stop, until: Instant) -> Result<()> {
        stop.check()?;
        if let Some(why) = &*self.failed.borrow() {
            return Err(Error::Interface(why.clone()));
        }
        if !inbox.frames.borrow().is_empty() {
            return Ok(());
        }
        tokio::select! {
            e = stop.stopped() => return Err(e),
            () = inbox.ready.notified() => {}
            () = tokio::time::sleep_until(until.into()) => {}
        }
        Ok(())
    }

    /// The port's task: sorts captured frames into the inboxes until the
    /// engine ends it.
    pub(crate) async fn dispatch(self: Rc<Port>) {
        loop {
            match self.watch.readable().await {
                // Cleared before draining: a frame arriving after this
                // raises readiness again.
                Ok(mut guard) => guard.clear_ready(),
                Err(e) => return self.capture_failed(Error::io("waiting for frames", e)),
            }
            if let Err(e) = self.drain() {
                return self.capture_failed(e);
            }
        }
    }

    fn capture_failed(&self, e: Error) {
        self.fail(format!("the capture on {} failed: {e}", self.dev.name));
    }

    /// Marks the port as failed (the first reason is kept) and wakes its
    /// flows, whose waits then fail with `why`.
    fn fail(&self, why: String) {
        self.failed.borrow_mut().get_or_insert(why);
        for inbox in self.inboxes.borrow().values() {
            inbox.ready.notify_one();
        }
    }

    /// Moves every captured frame to its flow's inbox.
    fn drain(&self) -> Result<()> {
        let inboxes = self.inboxes.borrow();
        let mut tracer = self.tracer.borrow_mut();
        let mut strays = 0;
        let mut deliver = |frame: &[u8]| match demux::key_of(frame).and_then(|k| inboxes.get(&k)) {
            Some(inbox) => {
                tracer.received(frame);
                inbox.push(Bytes::copy_from_slice(frame));
            }
            None => strays += 1,
        };
        match &mut *self.capture.borrow_mut() {
            Capture::Xdp(slot) => slot.drain(&mut deliver),
            Capture::Packet(socket) => {
                let mut buf = self.buf.borrow_mut();
                buf.resize(65536, 0);
                loop {
                    match socket.recv(&mut buf) {
                        Ok(n) => deliver(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            return Err(Error::on_interface(&self.dev.name, "receiving frames", e));
                        }
                    }
                }
            }
        }
        self.strays.set(self.strays.get() + strays);
        Ok(())
    }

    /// Keeps the capture slot ours for `lease` more (a long-running engine
    /// renews it; a one-shot check's lease covers its timeout).
    pub(crate) fn renew(&self, lease: Duration) -> Result<()> {
        match &mut *self.capture.borrow_mut() {
            Capture::Xdp(slot) => slot.renew(lease),
            Capture::Packet(_) => Ok(()),
        }
    }

    /// Frees the entries of processes that ended since this port claimed
    /// its slot (see [`Slot::collect_dead`]).
    pub(crate) fn collect_dead(&self) -> Result<usize> {
        match &mut *self.capture.borrow_mut() {
            Capture::Xdp(slot) => slot.collect_dead(),
            Capture::Packet(_) => Ok(0),
        }
    }

    /// The XDP program's counters, when the capture is XDP.
    pub(crate) fn counters(&self) -> Option<Vec<(checker_common::Counter, u64)>> {
        match &*self.capture.borrow() {
            Capture::Xdp(slot) => slot.counters().ok(),
            Capture::Packet(_) => None,
        }
    }

    /// Where the capture program of this port is (none with `--xdp off`).
    pub(crate) fn hook(&self) -> Option<crate::xdp::Hook> {
        match &*self.capture.borrow() {
            Capture::Xdp(slot) => Some(slot.hook()),
            Capture::Packet(_) => None,
        }
    }
}

/// The capture's fd for tokio's reactor.
struct Watch(RawFd);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
