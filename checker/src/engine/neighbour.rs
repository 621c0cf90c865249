//! The real servers' MACs as the flows of one interface learned them:
//! one ARP (IPv4) or neighbour-discovery (IPv6) exchange per real server,
//! whatever the number of flows checking it.
//!
//! Plain data with time passed in: the engine asks [`Neighbours::lookup`];
//! on [`Lookup::Ask`] the flow resolves and reports with
//! [`Neighbours::learned`] (or drops its [`Asking`] turn); flows that find
//! [`Lookup::Wait`] wait for that report, then look again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::sys::netdev::Mac;

/// How long a learned MAC is used without asking again. A check that gets
/// no answer forgets the MAC it used at once (see [`Neighbours::forget`]),
/// so a real server whose MAC changed is found again at its next check.
pub(crate) const FRESH: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct Neighbours {
    entries: HashMap<IpAddr, Entry>,
}

enum Entry {
    Known {
        mac: Mac,
        learned: Instant,
    },
    /// A flow is asking; the others wait for this.
    Asking(Rc<Notify>),
}

/// What a flow does about a real server's MAC.
pub(crate) enum Lookup {
    Known(Mac),
    /// Ask the network; report the answer through the turn (dropping it
    /// without an answer lets the next flow ask).
    Ask(Asking),
    /// Another flow is asking: wait for this, then look again.
    Wait(Rc<Notify>),
}

/// The turn of the flow that asks for `ip`.
pub(crate) struct Asking {
    pub(crate) ip: IpAddr,
    done: Rc<Notify>,
}

impl Neighbours {
    pub(crate) fn lookup(&mut self, ip: IpAddr, now: Instant) -> Lookup {
        match self.entries.get(&ip) {
            Some(Entry::Known { mac, learned }) if now.duration_since(*learned) < FRESH => {
                return Lookup::Known(*mac);
            }
            Some(Entry::Asking(done)) => return Lookup::Wait(done.clone()),
            _ => {}
        }
        let done = Rc::new(Notify::new());
        self.entries.insert(ip, Entry::Asking(done.clone()));
        Lookup::Ask(Asking { ip, done })
    }

    /// The asking flow's answer: `Some(mac)` is kept for [`FRESH`]; `None`
    /// (nobody answered) is not kept, the next flow asks again.
    pub(crate) fn learned(&mut self, turn: Asking, mac: Option<Mac>, now: Instant) {
        match mac {
            Some(mac) => {
                self.entries
                    .insert(turn.ip, Entry::Known { mac, learned: now });
            }
            None => {
                self.entries.remove(&turn.ip);
            }
        }
        turn.done.notify_waiters();
    }

    /// A turn given up (the asking flow failed or was cancelled).
    pub(crate) fn abandon(&mut self, turn: &Asking) {
        if matches!(self.entries.get(&turn.ip), Some(Entry::Asking(done)) if Rc::ptr_eq(done, &turn.done))
        {
            self.entries.remove(&turn.ip);
        }
        turn.done.notify_waiters();
    }

    /// `ip` did not answer a flow that used `mac`: ask again next time.
    pub(crate) fn forget(&mut self, ip: IpAddr, mac: Mac) {
        if matches!(self.entries.get(&ip), Some(Entry::Known { mac: known, .. }) if *known == mac) {
            self.entries.remove(&ip);
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 11));
    const MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);

    #[test]
    fn one_asks_the_others_wait_then_all_know() {
        let t0 = Instant::now();
        let mut n = Neighbours::default();
        let Lookup::Ask(turn) = n.lookup(RS, t0) else {
            panic!("the first flow asks")
        };
        assert!(matches!(n.lookup(RS, t0), Lookup::Wait(_)));
        n.learned(turn, Some(MAC), t0);
        assert!(matches!(n.lookup(RS, t0), Lookup::Known(MAC)));
        // Stale after FRESH: asked again.
        assert!(matches!(n.lookup(RS, t0 + FRESH), Lookup::Ask(_)));
    }

    #[test]
    fn no_answer_and_forget_make_the_next_flow_ask() {
        let t0 = Instant::now();
        let mut n = Neighbours::default();
        let Lookup::Ask(turn) = n.lookup(RS, t0) else {
            panic!()
        };
        n.learned(turn, None, t0);
        let Lookup::Ask(turn) = n.lookup(RS, t0) else {
            panic!("nobody answered: ask again")
        };
        n.learned(turn, Some(MAC), t0);
        n.forget(RS, Mac([2, 0, 0, 0, 0, 0x0c]));
        assert!(
            matches!(n.lookup(RS, t0), Lookup::Known(MAC)),
            "another MAC: kept"
        );
        n.forget(RS, MAC);
        assert!(matches!(n.lookup(RS, t0), Lookup::Ask(_)));
    }

    #[test]
    fn an_abandoned_turn_frees_the_entry() {
        let t0 = Instant::now();
        let mut n = Neighbours::default();
        let Lookup::Ask(turn) = n.lookup(RS, t0) else {
            panic!()
        };
        n.abandon(&turn);
        assert!(n.is_empty());
    }
}
