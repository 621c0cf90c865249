//! Names of what a lab creates: namespaces `vck-<id>-<node>` and the
//! temporary directory `vck-<id>`. `<id>` is `demo` for the lab that
//! `cargo xtask lab up` leaves running, or `<pid>-<n>` for the n-th lab of
//! process `pid`: the owner is in the name, so the leftovers of a process
//! that died (a SIGKILLed test run) can be recognised and removed later.

// unsafe: libc calls (namespaces, signals, process accounting), each with a SAFETY line.
#![allow(unsafe_code)]

/// Common prefix of every lab namespace and temporary directory.
pub const PREFIX: &str = "vck-";

pub(crate) const DEMO_ID: &str = "demo";

/// Who a lab belongs to, as read from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The lab of `cargo xtask lab up`, removed by `cargo xtask lab down`.
    Demo,
    /// A lab made by `Lab::up` in this process id.
    Process(u32),
}

impl Owner {
    /// Parses a lab id: `demo` or `<pid>-<n>`.
    pub(crate) fn of_id(id: &str) -> Option<Owner> {
        if id == DEMO_ID {
            return Some(Owner::Demo);
        }
        let (pid, n) = id.split_once('-')?;
        if !is_number(n) || !is_number(pid) {
            return None;
        }
        pid.parse().ok().map(Owner::Process)
    }

    /// Whether the owner may still use the lab (the demo lab always may).
    pub fn is_alive(self) -> bool {
        match self {
            Owner::Demo => true,
            Owner::Process(pid) => process_exists(pid),
        }
    }
}

/// Lab id of this process's `n`-th lab.
pub(crate) fn process_id(n: u32) -> String {
    format!("{}-{n}", std::process::id())
}

pub(crate) fn ns_name(id: &str, node: &str) -> String {
    format!("{PREFIX}{id}-{node}")
}

pub(crate) fn dir_name(id: &str) -> String {
    format!("{PREFIX}{id}")
}

/// Splits a namespace name into lab id and node (`vck-12-0-lb` → `12-0`,
/// `lb`); `None` for names that are not a lab's.
pub(crate) fn split_ns_name(name: &str) -> Option<(&str, &str)> {
    let (id, node) = name.strip_prefix(PREFIX)?.rsplit_once('-')?;
    let node_ok = !node.is_empty() && node.bytes().all(|b| b.is_ascii_lowercase());
    (node_ok && Owner::of_id(id).is_some()).then_some((id, node))
}

/// Lab id of a temporary directory name (`vck-12-0` → `12-0`).
pub(crate) fn split_dir_name(name: &str) -> Option<&str> {
    let id = name.strip_prefix(PREFIX)?;
    Owner::of_id(id).map(|_| id)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_owner_from_id() {
        assert_eq!(Owner::of_id("demo"), Some(Owner::Demo));
        assert_eq!(Owner::of_id("1234-0"), Some(Owner::Process(1234)));
        assert_eq!(Owner::of_id("1234"), None);
        assert_eq!(Owner::of_id("1234-"), None);
        assert_eq!(Owner::of_id("-1"), None);
        assert_eq!(Owner::of_id("12a-1"), None);
        assert_eq!(Owner::of_id("1-2-3"), None);
        assert_eq!(Owner::of_id("99999999999-1"), None);
    }

    #[test]
    fn splits_namespace_names() {
        assert_eq!(split_ns_name("vck-1234-7-lb"), Some(("1234-7", "lb")));
        assert_eq!(split_ns_name("vck-demo-sw"), Some(("demo", "sw")));
        assert_eq!(split_ns_name(&ns_name("5-1", "ok")), Some(("5-1", "ok")));
        assert_eq!(split_ns_name("vck-demo-"), None);
        assert_eq!(split_ns_name("vck-lb"), None);
        assert_eq!(split_ns_name("vck-x-1-lb"), None);
        assert_eq!(split_ns_name("other-1-2-lb"), None);
        assert_eq!(split_ns_name("vck-1-2-LB"), None);
    }

    #[test]
    fn splits_directory_names() {
        assert_eq!(split_dir_name("vck-42-3"), Some("42-3"));
        assert_eq!(split_dir_name(&dir_name("demo")), Some("demo"));
        assert_eq!(split_dir_name("vck-42-3-lb"), None);
        assert_eq!(split_dir_name("vck-"), None);
    }

    #[test]
    fn own_process_is_alive_and_ids_carry_it() {
        let id = process_id(3);
        assert_eq!(Owner::of_id(&id), Some(Owner::Process(std::process::id())));
        assert!(Owner::of_id(&id).unwrap().is_alive());
        assert!(Owner::Demo.is_alive());
    }
}
