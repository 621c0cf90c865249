//! One direction of the simulated wire: frames in flight, with seeded
//! faults (drop, duplicate, reorder, delay, corrupt) applied as they are
//! sent, as smoltcp's `FaultInjector` does for a device.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

/// A small seeded generator (SplitMix64): the same seed, the same faults.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p` (0 to 1).
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `seed` mixed with `stream`: independent generators from one seed.
pub(super) fn derive(seed: u64, stream: u64) -> u64 {
    Rng::new(seed ^ stream.wrapping_mul(0xd6e8_feb8_6659_fd93)).next_u64()
}

/// Per-frame probabilities (0 to 1) of each fault, in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Faults {
    /// The frame is lost.
    pub(crate) drop: f64,
    /// The frame arrives twice (the copy right after it).
    pub(crate) duplicate: f64,
    /// The frame is held back until the next frame of its direction has
    /// gone (at most [`REORDER_HOLD`]), then arrives right after that one.
    pub(crate) reorder: f64,
    /// The frame arrives [`DELAY_MIN`] to [`DELAY_MAX`] late (uniform), so
    /// later frames overtake it.
    pub(crate) delay: f64,
    /// One byte of the frame, anywhere, is changed (XOR with 1 to 255).
    pub(crate) corrupt: f64,
}

/// One-way time on the simulated wire (a LAN hop).
pub(crate) const LATENCY: Duration = Duration::from_micros(50);
pub(crate) const REORDER_HOLD: Duration = Duration::from_millis(5);
pub(crate) const DELAY_MIN: Duration = Duration::from_millis(1);
pub(crate) const DELAY_MAX: Duration = Duration::from_millis(250);

/// One direction of the wire: frames in flight, with the faults applied
/// as they are sent. Times are simulated: a [`Duration`] since the start.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    faults: Faults,
    rng: Rng,
    /// (arrival, order sent) → frame.
    in_flight: BTreeMap<(Duration, u64), Bytes>,
    next_order: u64,
    /// A frame being reordered: released after the next frame, or at
    /// this time; with its copies (2 when duplicated).
    held: Option<(Duration, Bytes, u8)>,
    /// What happened, for the curious.
    pub(crate) stats: FaultStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultStats {
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    pub(crate) delayed: u64,
    pub(crate) corrupted: u64,
}

impl FaultInjector {
    pub(crate) fn new(faults: Faults, seed: u64) -> FaultInjector {
        FaultInjector {
            faults,
            rng: Rng::new(seed),
            in_flight: BTreeMap::new(),
            next_order: 0,
            held: None,
            stats: FaultStats::default(),
        }
    }

    /// `frame` goes on the wire at `now`.
    pub(crate) fn send(&mut self, now: Duration, frame: Bytes) {
        self.stats.sent += 1;
        // Every decision is drawn for every frame, so the draws of a seed
        // do not depend on the rates.
        let f = self.faults;
        let drop = self.rng.chance(f.drop);
        let corrupt = self.rng.chance(f.corrupt);
        let duplicate = self.rng.chance(f.duplicate);
        let delay = self.rng.chance(f.delay);
        let reorder = self.rng.chance(f.reorder);
        if drop {
            self.stats.dropped += 1;
            self.release_held(now);
            return;
        }
        let frame = if corrupt && !frame.is_empty() {
            self.stats.corrupted += 1;
            let mut bytes = frame.to_vec();
            let at = self.rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 + self.rng.below(255) as u8;
            Bytes::from(bytes)
        } else {
            frame
        };
        let copies = if duplicate {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        if reorder && self.held.is_none() {
            self.stats.reordered += 1;
            self.held = Some((now + REORDER_HOLD, frame, copies));
            return;
        }
        let extra = if delay {
            self.stats.delayed += 1;
            let span = (DELAY_MAX - DELAY_MIN).as_micros() as u64;
            DELAY_MIN + Duration::from_micros(self.rng.below(span + 1))
        } else {
            Duration::ZERO
        };
        self.schedule(now + LATENCY + extra, frame, copies);
        self.release_held(now);
    }

    fn schedule(&mut self, at: Duration, frame: Bytes, copies: u8) {
        for _ in 0..copies {
            self.in_flight.insert((at, self.next_order), frame.clone());
            self.next_order += 1;
        }
    }

    /// The held frame goes now (after whatever was just sent).
    fn release_held(&mut self, now: Duration) {
        if let Some((_, frame, copies)) = self.held.take() {
            self.schedule(now + LATENCY, frame, copies);
        }
    }

    /// The frames that have arrived by `now`, in arrival order.
    pub(crate) fn deliver(&mut self, now: Duration) -> Vec<Bytes> {
        if let Some((until, _, _)) = &self.held
            && *until <= now
        {
            let until = *until;
            if let Some((_, frame, copies)) = self.held.take() {
                // Arrives as if sent when its hold ended.
                self.schedule(until + LATENCY, frame, copies);
            }
        }
        let mut out = Vec::new();
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            out.push(entry.remove());
        }
        out
    }

    /// When something next happens on this wire.
    pub(crate) fn next_at(&self) -> Option<Duration> {
        let arrival = self.in_flight.keys().next().map(|(at, _)| *at);
        let hold = self.held.as_ref().map(|(until, _, _)| *until);
        match (arrival, hold) {
            (Some(a), Some(h)) => Some(a.min(h)),
            (a, h) => a.or(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Bytes {
        Bytes::from(vec![n; 60])
    }

    #[test]
    fn a_clean_wire_delivers_in_order_after_the_latency() {
        let mut wire = FaultInjector::new(Faults::default(), 7);
        for n in 0..5 {
            wire.send(Duration::ZERO, frame(n));
        }
        assert!(wire.deliver(LATENCY - Duration::from_micros(1)).is_empty());
        let got = wire.deliver(LATENCY);
        assert_eq!(got, (0..5).map(frame).collect::<Vec<_>>());
        assert_eq!(wire.next_at(), None);
    }

    #[test]
    fn each_fault_does_what_it_says() {
        let all = |faults| {
            let mut wire = FaultInjector::new(faults, 7);
            wire.send(Duration::ZERO, frame(1));
            wire.send(Duration::ZERO, frame(2));
            (wire.deliver(Duration::from_secs(1)), wire.stats)
        };
        let f = Faults::default();
        assert!(all(Faults { drop: 1.0, ..f }).0.is_empty());
        assert_eq!(
            all(Faults {
                duplicate: 1.0,
                ..f
            })
            .0,
            vec![frame(1), frame(1), frame(2), frame(2)]
        );
        // The first is held until the second has gone, then follows it;
        // the second finds a frame held already and goes as it is.
        let (got, stats) = all(Faults { reorder: 1.0, ..f });
        assert_eq!((got, stats.reordered), (vec![frame(2), frame(1)], 1));
        let (got, stats) = all(Faults { corrupt: 1.0, ..f });
        assert_eq!(stats.corrupted, 2);
        for (got, want) in got.iter().zip([frame(1), frame(2)]) {
            let differ = got.iter().zip(want.iter()).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 1, "{got:?}");
        }
        let (got, stats) = all(Faults { delay: 1.0, ..f });
        assert_eq!((got.len(), stats.delayed, stats.sent), (2, 2, 2));
        let (_, stats) = all(Faults { drop: 1.0, ..f });
        assert_eq!((stats.dropped, stats.duplicated), (2, 0));
    }
}
