//! Rise/fall damping of one target's results, as keepalived's `retry` and
//! LVS's `inhibit` users expect: one lost SYN does not take a real server
//! out, and one lucky answer does not bring a failing one back.
//!
//! The first result sets the state at once: before it the daemon knows
//! nothing, and waiting `rise` checks to say "up" would hold a healthy
//! server out of the pool for as long after every restart.

use std::fmt;

/// What the daemon says of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum State {
    /// No result yet.
    Unknown,
    Up,
    Down,
}

impl State {
    /// `unknown`, `up` or `down`, for logs and JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of state, for the caller to act on (write the track file, log
/// a line, count it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) from: State,
    pub(crate) to: State,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// The damped health of one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Health {
    rise: u32,
    fall: u32,
    state: State,
    raw: Option<bool>,
    /// Consecutive results, up to the last, that disagree with `state`.
    streak: u32,
}

impl Health {
    /// `rise`: successes in a row that bring a down target up; `fall`:
    /// failures in a row that take an up target down. Both at least 1 (0
    /// is read as 1: a change needs at least the result that makes it).
    pub(crate) fn new(rise: u32, fall: u32) -> Health {
        Health {
            rise: rise.max(1),
            fall: fall.max(1),
            state: State::Unknown,
            raw: None,
            streak: 0,
        }
    }

    /// Takes one check's result; returns the change it makes, if any.
    pub(crate) fn observe(&mut self, ok: bool) -> Option<Change> {
        self.raw = Some(ok);
        let from = self.state;
        let (agrees, needed, to) = match from {
            State::Unknown => {
                let to = if ok { State::Up } else { State::Down };
                self.state = to;
                self.streak = 0;
                return Some(Change { from, to });
            }
            State::Up => (ok, self.fall, State::Down),
            State::Down => (!ok, self.rise, State::Up),
        };
        if agrees {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        if self.streak < needed {
            return None;
        }
        self.state = to;
        self.streak = 0;
        Some(Change { from, to })
    }

    /// The damped state.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    #[cfg(test)]
    /// The last result, undamped; `None` before the first.
    pub(crate) fn raw(&self) -> Option<bool> {
        self.raw
    }

    #[cfg(test)]
    /// Results in a row, up to the last, that disagree with the state: how
    /// far the target is on its way to a change (e.g. 2 of `fall` 3).
    pub(crate) fn streak(&self) -> u32 {
        self.streak
    }

    pub(crate) fn rise(&self) -> u32 {
        self.rise
    }

    pub(crate) fn fall(&self) -> u32 {
        self.fall
    }

    /// New thresholds (a reload), keeping the state and the streak: a
    /// target that was up stays up. A streak already at or past a lowered
    /// threshold changes the state at the next result that disagrees.
    pub(crate) fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Option<Change> = Some(Change {
        from: State::Down,
        to: State::Up,
    });
    const DOWN: Option<Change> = Some(Change {
        from: State::Up,
        to: State::Down,
    });

    /// Feeds `results` ('+' ok, '-' failed), returns the changes made.
    fn feed(h: &mut Health, results: &str) -> Vec<Option<Change>> {
        results.chars().map(|c| h.observe(c == '+')).collect()
    }

    #[test]
    fn first_result_sets_the_state_at_once() {
        let mut h = Health::new(3, 3);
        assert_eq!(h.state(), State::Unknown);
        assert_eq!(h.raw(), None);
        assert_eq!(
            h.observe(false),
            Some(Change {
                from: State::Unknown,
                to: State::Down
            })
        );
        assert_eq!(h.state(), State::Down);
        assert_eq!(h.raw(), Some(false));

        let mut h = Health::new(3, 3);
        assert_eq!(
            h.observe(true),
            Some(Change {
                from: State::Unknown,
                to: State::Up
            })
        );
        assert_eq!(h.state(), State::Up);
    }

    #[test]
    fn exact_counts() {
        let mut h = Health::new(2, 3);
        h.observe(true);
        // fall 3: the third failure in a row takes it down, not before.
        assert_eq!(feed(&mut h, "--"), [None, None]);
        assert_eq!(h.state(), State::Up);
        assert_eq!(h.streak(), 2);
        assert_eq!(h.raw(), Some(false));
        assert_eq!(feed(&mut h, "-"), [DOWN]);
        assert_eq!(h.streak(), 0);
        // More failures change nothing.
        assert_eq!(feed(&mut h, "---"), [None, None, None]);
        // rise 2: the second success in a row brings it up.
        assert_eq!(feed(&mut h, "+"), [None]);
        assert_eq!(h.state(), State::Down);
        assert_eq!(h.raw(), Some(true));
        assert_eq!(feed(&mut h, "+"), [UP]);
        assert_eq!(h.state(), State::Up);
    }

    #[test]
    fn agreeing_result_resets_the_streak() {
        let mut h = Health::new(3, 3);
        h.observe(true);
        // Two failures, a success, two failures: never three in a row.
        assert_eq!(feed(&mut h, "--+--"), [None; 5]);
        assert_eq!(h.state(), State::Up);
        assert_eq!(h.streak(), 2);
        assert_eq!(feed(&mut h, "-"), [DOWN]);
        assert_eq!(feed(&mut h, "++-++"), [None; 5]);
        assert_eq!(h.state(), State::Down);
        assert_eq!(feed(&mut h, "+"), [UP]);
    }

    #[test]
    fn flapping_is_damped() {
        let mut h = Health::new(2, 2);
        h.observe(true);
        let changes = feed(&mut h, "-+-+-+-+-+-+");
        assert!(changes.iter().all(Option::is_none));
        assert_eq!(h.state(), State::Up);
        // Once down, flapping keeps it down.
        assert_eq!(feed(&mut h, "--"), [None, DOWN]);
        let changes = feed(&mut h, "+-+-+-+-");
        assert!(changes.iter().all(Option::is_none));
        assert_eq!(h.state(), State::Down);
    }

    #[test]
    fn rise_and_fall_of_one_follow_every_result() {
        let mut h = Health::new(1, 1);
        h.observe(true);
        assert_eq!(feed(&mut h, "-+-+"), [DOWN, UP, DOWN, UP]);
        assert_eq!(feed(&mut h, "++"), [None, None]);
    }

    #[test]
    fn zero_thresholds_are_one() {
        let mut h = Health::new(0, 0);
        assert_eq!((h.rise(), h.fall()), (1, 1));
        h.observe(false);
        assert_eq!(feed(&mut h, "+-"), [UP, DOWN]);
    }

    #[test]
    fn new_thresholds_keep_the_state() {
        let mut h = Health::new(5, 5);
        h.observe(true);
        assert_eq!(feed(&mut h, "---"), [None; 3]);
        h.set_thresholds(2, 2);
        assert_eq!(h.state(), State::Up);
        assert_eq!(h.streak(), 3);
        assert_eq!(feed(&mut h, "-"), [DOWN]);
        h.set_thresholds(0, 0);
        assert_eq!((h.rise(), h.fall()), (1, 1));
    }

    #[test]
    fn change_prints() {
        assert_eq!(DOWN.map(|c| c.to_string()).as_deref(), Some("up -> down"));
        assert_eq!(State::Unknown.to_string(), "unknown");
    }
}
