//! Developer tasks of the vipcheck workspace (`cargo xtask --help`) and the
//! network-namespace test lab that the checker's integration tests build
//! (`xtask::lab::Lab::up`).

pub mod bench;
pub mod dist;
pub mod fuzz;
pub mod lab;
pub mod layers;
pub mod release;
pub mod setup;

/// Fails, naming `what` (and why it needs root), unless this process runs
/// as root.
#[allow(unsafe_code)] // geteuid(2)
pub fn require_root(what: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("{what} needs root: run it as root or with sudo");
    }
    Ok(())
}
