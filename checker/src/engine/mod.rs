//! The engine: one process driving any number of check flows over one
//! [`Port`] per interface (one capture slot, one AF_PACKET socket, one
//! neighbour cache), on one thread.
//!
//! Data flows one way: a [`Probe`] (from the CLI, the C command lines or a
//! config file) is checked by `check::{tcp,http}` as a [`Flow`](crate::check::Flow),
//! which the engine gives a port ([`Engine::port`]); each port's task sorts
//! captured frames into the flows' inboxes; a flow ends in a verdict that
//! the caller turns into output. A one-shot command is the engine with one
//! target ([`one_shot`]); `audit` and `daemon` are the engine with many
//! ([`block_on`]). There is no second code path.

pub(crate) mod neighbour;
pub(crate) mod port;
pub(crate) mod preflight;
pub(crate) mod resolve;
pub(crate) mod stack;
pub(crate) mod stop;
pub(crate) mod trace;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::engine::trace::Tracer;
use crate::error::{Error, Result};
use crate::probe::{self, Probe};
use crate::sys::netdev::NetDev;
use crate::sys::packet::{ETH_P_ALL, PacketSocket};
use crate::xdp::{Attach, Hook, Rings, XdpHandle};
use port::{Capture, Port};
use preflight::Plan;
use stop::Stop;

/// How long a long-running engine holds its capture slot between
/// renewals: a process killed with SIGKILL leaves a slot that later checks
/// free once its owner is gone, or at the latest this long after.
const LEASE: Duration = Duration::from_secs(60);

pub(crate) struct Engine {
    ports: RefCell<HashMap<String, Open>>,
    /// What happened to the ports since [`Engine::port_events`] was last
    /// asked (a long-running engine's log), and the interfaces whose port
    /// was closed because they went away, with their old index.
    events: RefCell<Vec<String>>,
    gone: RefCell<HashMap<String, u32>>,
    host: RefCell<HostCache>,
    pub(crate) stop: Rc<Stop>,
    tasks: RefCell<Vec<tokio::task::JoinHandle<()>>>,
    /// `None`: one check, whose slot lease is its timeout. `Some`: the
    /// slot lease, renewed by a task.
    lease: Option<Duration>,
    /// The capture slots its ports take.
    rings: Rings,
}

/// Runs `f` on an engine for many checks: a runtime on this thread, the
/// ports' tasks beside it. Every port is closed (its flows and slot freed)
/// before this returns.
pub(crate) fn block_on<T>(f: impl AsyncFnOnce(Rc<Engine>) -> Result<T>) -> Result<T> {
    run(Some(LEASE), Rings::Large, f)
}

/// Runs one check on an engine of its own, whose port takes a capture
/// slot of `rings` (a handshake alone fits a small ring).
pub(crate) fn one_shot<T>(rings: Rings, f: impl AsyncFnOnce(Rc<Engine>) -> Result<T>) -> Result<T> {
    run(None, rings, f)
}

fn run<T>(
    lease: Option<Duration>,
    rings: Rings,
    f: impl AsyncFnOnce(Rc<Engine>) -> Result<T>,
) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting the event loop", e))?;
    let local = tokio::task::LocalSet::new();
    let out = local.block_on(&runtime, async {
        let engine = Engine::start(lease, rings)?;
        let out = f(engine.clone()).await;
        engine.shutdown();
        out
    });
    // The tasks (and the ports they hold) go before the runtime.
    drop(local);
    out
}

impl Engine {
    /// Inside a LocalSet: catches SIGTERM and SIGINT from now on.
    fn start(lease: Option<Duration>, rings: Rings) -> Result<Rc<Engine>> {
        let stop = Rc::new(Stop::default());
        let signals = Stop::catch(stop.clone())?;
        let engine = Rc::new(Engine {
            ports: RefCell::default(),
            events: RefCell::default(),
            gone: RefCell::default(),
            host: RefCell::default(),
            stop,
            tasks: RefCell::default(),
            lease,
            rings,
        });
        engine.spawn(signals);
        if let Some(lease) = lease {
            let weak = Rc::downgrade(&engine);
            engine.spawn(async move {
                loop {
                    tokio::time::sleep(lease / 4).await;
                    let Some(engine) = weak.upgrade() else { return };
                    for open in engine.ports.borrow().values() {
                        let port = &open.port;
                        if let Err(e) = port.renew(lease) {
                            log::warn!("{}: {e}", port.dev.name);
                        }
                        // Processes killed since the claim left entries
                        // that only a claim would free.
                        if let Err(e) = port.collect_dead() {
                            log::warn!("{}: {e}", port.dev.name);
                        }
                    }
                }
            });
        }
        Ok(engine)
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.tasks.borrow_mut().push(tokio::task::spawn_local(task));
    }

    /// What `target` sends from, once the preflight accepted it: nothing
    /// is sent or attached before.
    pub(crate) fn preflight(&self, target: &Probe) -> Result<Plan> {
        preflight::check_on(&mut *self.host.borrow_mut(), target)
    }

    /// The interface of the kernel's route to `real_server`: a target's
    /// interface when its file gives none.
    pub(crate) fn route_interface(&self, real_server: std::net::IpAddr) -> Result<String> {
        use preflight::Host;
        let mut host = self.host.borrow_mut();
        let route = host
            .route_to(real_server)
            .map_err(|e| Error::io(format!("looking up the route to {real_server}"), e))?;
        let oif = route.oif.ok_or_else(|| {
            Error::Usage(format!(
                "no interface routes to {real_server}; give iface in the targets file"
            ))
        })?;
        host.link_name(oif)
    }

    /// The port of `dev`, opened on first use as `target` asks (loading and
    /// attaching the XDP program if the interface has none). With the time
    /// that loading and attaching took, when this call did it. A slot not
    /// claimed by `claim_by` (all taken by other processes) is an error.
    pub(crate) fn port(
        &self,
        dev: &NetDev,
        target: &Probe,
        claim_by: Instant,
    ) -> Result<(Rc<Port>, Option<Duration>)> {
        // A port is kept for the engine's lifetime, but only while it is
        // the interface's: an interface deleted and made again under the
        // same name has a new index (the old port's socket and capture
        // slot, of the program that went with the old interface, are of no
        // use), and a port whose capture failed or whose interface went
        // away ([`Port::failed`]) gets nothing any more. Such a port is
        // closed here and this flow opens a new one (attaching the program
        // again if the interface has none).
        let stale = match self.ports.borrow().get(&dev.name) {
            None => None,
            Some(open) if open.port.dev.ifindex != dev.ifindex => Some(format!(
                "{} was made again (index {}, was {})",
                dev.name, dev.ifindex, open.port.dev.ifindex
            )),
            Some(open) => match open.port.failed() {
                None => return Ok((open.port.clone(), None)),
                Some(why) => Some(why),
            },
        };
        if let Some(why) = stale {
            self.retire(&dev.name, &why);
        }
        let begun = Instant::now();
        let tracer = Tracer::new(target.trace, target.pcap.as_deref())?;
        // Opened first: it is also the privilege check.
        let tx = PacketSocket::open(dev.ifindex, 0)?;
        // With XDP or TC, `program` is the program this port's slot
        // belongs to: [`Engine::port_events`] closes the port once another
        // one (or none) is attached.
        let (capture, attached, program) = match target.capture {
            probe::Capture::Require => {
                let (handle, attach) =
                    XdpHandle::open_or_attach(dev, target.hook, target.xdp_mode)?;
                let program = (handle.program_id(), handle.hook());
                let lease = self.lease.unwrap_or(target.timeout);
                let slot = handle.claim_slot(&dev.name, lease, claim_by, self.rings)?;
                // A cold check's first ring (an RCU grace period) is part
                // of its attach.
                let attached = (attach == Attach::Loaded).then(|| begun.elapsed());
                (Capture::Xdp(Box::new(slot)), attached, Some(program))
            }
            probe::Capture::Off => (
                Capture::Packet(PacketSocket::open(dev.ifindex, ETH_P_ALL)?),
                None,
                None,
            ),
        };
        let port = Rc::new(Port::new(dev.clone(), capture, tx, tracer)?);
        let dispatch = tokio::task::spawn_local(port.clone().dispatch());
        let abort = dispatch.abort_handle();
        self.tasks.borrow_mut().push(dispatch);
        if let Some(old) = self.gone.borrow_mut().remove(&dev.name) {
            let back = if old == dev.ifindex {
                format!("{}: its port is open again", dev.name)
            } else {
                format!("{} is back (index {}, was {old})", dev.name, dev.ifindex)
            };
            self.events.borrow_mut().push(format!(
                "{back}: {}",
                match (program, attached) {
                    (None, _) => "capturing through AF_PACKET (--xdp off)".to_string(),
                    (Some((id, hook)), Some(took)) => format!(
                        "capture program attached again at {} (id {id}, {:.1} ms)",
                        hook.name(),
                        took.as_secs_f64() * 1000.0
                    ),
                    (Some((id, hook)), None) => {
                        format!(
                            "capture program found attached at {} (id {id})",
                            hook.name()
                        )
                    }
                }
            ));
        }
        self.ports.borrow_mut().insert(
            dev.name.clone(),
            Open {
                port: port.clone(),
                dispatch: abort,
                program,
            },
        );
        Ok((port, attached))
    }

    /// Closes the port of `name` because of `why`, and says so: removed
    /// from the engine, its task ended; its slot, flows and sockets are
    /// freed once the flows still holding it have ended. The interface is
    /// read again by the next preflight.
    fn retire(&self, name: &str, why: &str) {
        let Some(open) = self.ports.borrow_mut().remove(name) else {
            return;
        };
        open.dispatch.abort();
        // What the preflight kept of the old interface (its index, the
        // routes through it) is read again.
        let mut host = self.host.borrow_mut();
        host.devs.remove(name);
        host.routes.clear();
        host.names.clear();
        drop(host);
        self.gone
            .borrow_mut()
            .entry(name.to_string())
            .or_insert(open.port.dev.ifindex);
        self.events.borrow_mut().push(format!(
            "{why}: its port is closed (capture slot and flows freed); \
             the next check through {name} opens it again"
        ));
    }

    /// For a long-running engine, every second or so: closes the ports
    /// that are of no use any more (their interface gone or replaced, the
    /// XDP program their slot belongs to detached or replaced, their
    /// capture failed), so that nothing of a gone interface lingers and
    /// the next check through it opens a new port; says what happened to
    /// the ports since the last call (one line each, for a log).
    pub(crate) fn port_events(&self) -> Vec<String> {
        let names: Vec<String> = self.ports.borrow().keys().cloned().collect();
        for name in names {
            let Some((ifindex, program, failed)) = self
                .ports
                .borrow()
                .get(&name)
                .map(|open| (open.port.dev.ifindex, open.program, open.port.failed()))
            else {
                continue;
            };
            let why = match crate::sys::rtnl::link(ifindex) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENODEV) =>
                {
                    Some(format!("{name} is gone"))
                }
                Err(_) => failed,
                Ok(link) if link.name != name => Some(format!("{name} is gone")),
                Ok(link)
                    if program.is_some_and(|(id, hook)| {
                        !crate::xdp::still_attached(ifindex, hook, id, link.xdp)
                    }) =>
                {
                    let hook = program.map_or("XDP", |(_, hook)| hook.short());
                    Some(format!(
                        "the {} program of {name} was detached or replaced",
                        hook.to_uppercase()
                    ))
                }
                Ok(_) => failed,
            };
            if let Some(why) = why {
                self.retire(&name, &why);
            }
        }
        std::mem::take(&mut *self.events.borrow_mut())
    }

    /// The open ports.
    pub(crate) fn ports(&self) -> Vec<Rc<Port>> {
        self.ports
            .borrow()
            .values()
            .map(|open| open.port.clone())
            .collect()
    }

    /// Ends the ports' tasks and closes the ports (their flows' entries
    /// and slots removed once the last flow holding them has gone).
    fn shutdown(&self) {
        for task in self.tasks.borrow_mut().drain(..) {
            task.abort();
        }
        self.ports.borrow_mut().clear();
    }
}

/// A port as the engine holds it.
struct Open {
    port: Rc<Port>,
    /// Its task ([`Port::dispatch`]), ended when the port is closed.
    dispatch: tokio::task::AbortHandle,
    /// With an XDP or TC capture: the id of the program attached when the
    /// port was opened, whose maps its slot and flows are in, and where.
    program: Option<(u32, Hook)>,
}

/// The interfaces and routes the preflight read, kept for [`FRESH`]: one
/// engine checks thousands of targets over a few interfaces and real
/// servers, and asking rtnetlink for each would cost more than the check.
/// Only answers are kept; an error is asked again.
#[derive(Default)]
struct HostCache {
    devs: HashMap<String, (NetDev, Instant)>,
    routes: HashMap<std::net::IpAddr, (crate::sys::rtnl::Route, Instant)>,
    names: HashMap<u32, (String, Instant)>,
}

impl HostCache {
    fn link_name(&mut self, ifindex: u32) -> Result<String> {
        let now = Instant::now();
        if let Some((name, read)) = self.names.get(&ifindex)
            && now.duration_since(*read) < FRESH
        {
            return Ok(name.clone());
        }
        let name = crate::sys::rtnl::link(ifindex)
            .map(|link| link.name)
            .map_err(|e| Error::io(format!("reading interface {ifindex}"), e))?;
        self.names.insert(ifindex, (name.clone(), now));
        Ok(name)
    }
}

/// How long the host's state read by the preflight is used again: an
/// interface taken down or a route changed is seen within this.
const FRESH: Duration = Duration::from_secs(1);

impl preflight::Host for HostCache {
    fn netdev(&mut self, name: &str) -> Result<NetDev> {
        let now = Instant::now();
        if let Some((dev, read)) = self.devs.get(name)
            && now.duration_since(*read) < FRESH
        {
            return Ok(dev.clone());
        }
        let dev = NetDev::lookup(name)?;
        self.devs.insert(name.to_string(), (dev.clone(), now));
        Ok(dev)
    }

    fn route_to(&mut self, ip: std::net::IpAddr) -> std::io::Result<crate::sys::rtnl::Route> {
        let now = Instant::now();
        if let Some((route, read)) = self.routes.get(&ip)
            && now.duration_since(*read) < FRESH
        {
            return Ok(route.clone());
        }
        let route = crate::sys::rtnl::route_to(ip)?;
        self.routes.insert(ip, (route.clone(), now));
        Ok(route)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
