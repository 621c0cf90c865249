//! Loading, attaching and pinning the program, and finding it again.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use aya::Ebpf;
use aya::maps::{Map, MapData};
use aya::programs::links::FdLink;
use aya::programs::{Xdp, XdpMode as AyaXdpMode};
use checker_common::{COUNTERS_MAP, FLOWS_MAP, PROGRAM_NAME, RINGS_MAP, SLOTS_MAP};

use super::sys::{link_info, obj_get};
use super::{XdpMode, bpf};
use crate::error::{Error, Result};
use crate::netdev::{NetDev, netns_inode};

/// The XDP object, built by build.rs from `checker-ebpf`.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vipcheck-xdp"));

/// Where bpffs is mounted and where our pins live.
const BPFFS: &str = "/sys/fs/bpf";
pub(super) const PIN_ROOT: &str = "/sys/fs/bpf/vipcheck";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// What is pinned for an interface, verified against the kernel.
pub(super) struct Attached {
    pub(super) mode: XdpMode,
    pub(super) program_id: u32,
}

impl Attached {
    /// Finds the pinned link in `dir` and checks that it is still attached
    /// to `dev`. A stale directory (namespace gone, interface gone, pins
    /// half-made) is removed.
    pub(super) fn find(dir: &Path, dev: &NetDev) -> Result<Option<Attached>> {
        match std::fs::metadata(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // Not "none attached": we cannot look (not root).
            Err(e) => return Err(Error::privileged("reading the pins under /sys/fs/bpf", e)),
        }
        for mode in [XdpMode::Skb, XdpMode::Native] {
            let link = match obj_get(&dir.join(mode.link_pin())) {
                Ok(link) => link,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                    return Err(Error::privileged("opening the pinned XDP link", e));
                }
                Err(_) => continue,
            };
            let info = link_info(&link).map_err(|e| Error::io("reading XDP link info", e))?;
            if info.ifindex == dev.ifindex {
                return Ok(Some(Attached {
                    mode,
                    program_id: info.prog_id,
                }));
            }
        }
        log::debug!("removing stale pins in {}", dir.display());
        std::fs::remove_dir_all(dir)
            .map_err(|e| Error::io(format!("removing stale pins {}", dir.display()), e))?;
        Ok(None)
    }
}

/// Removes the pins of programs whose interface is gone (its namespace was
/// deleted): they would hold the program and its rings in memory forever.
/// Runs only when a program is loaded, under the lock.
pub(super) fn sweep_defunct() {
    let Ok(entries) = std::fs::read_dir(PIN_ROOT) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        let defunct = [XdpMode::Skb, XdpMode::Native].iter().any(|mode| {
            obj_get(&dir.join(mode.link_pin()))
                .and_then(|link| link_info(&link))
                .is_ok_and(|info| info.ifindex == 0)
        });
        if defunct {
            log::debug!("removing pins of a deleted interface: {}", dir.display());
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

pub(super) fn attach(dir: &Path, dev: &NetDev, mode: XdpMode) -> Result<()> {
    // No kernel BTF: the program uses no CO-RE relocation, and parsing
    // /sys/kernel/btf/vmlinux would triple the process's memory.
    let mut ebpf = aya::EbpfLoader::new()
        .btf(None)
        .load(PROGRAM)
        .map_err(|e| match e {
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) => {
                Error::privileged("creating BPF maps", io_error)
            }
            e => Error::Bpf(format!("loading the program: {e}")),
        })?;
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or_else(|| Error::Bpf("program missing from the object".into()))?
        .try_into()
        .map_err(bpf("program type"))?;
    program.load().map_err(|e| match e {
        aya::programs::ProgramError::SyscallError(s) => {
            Error::privileged("loading the XDP program", s.io_error)
        }
        e => Error::Bpf(format!("the kernel refused the program: {e}")),
    })?;
    let aya_mode = match mode {
        XdpMode::Skb => AyaXdpMode::Skb,
        XdpMode::Native => AyaXdpMode::Driver,
    };
    let link_id = program
        .attach_to_if_index(dev.ifindex, aya_mode)
        .map_err(|e| match e {
            aya::programs::ProgramError::SyscallError(s)
                if s.io_error.raw_os_error() == Some(libc::EBUSY)
                    || s.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Error::ForeignXdp(dev.name.clone(), private_mounts())
            }
            e => Error::Bpf(format!(
                "attaching to {} in {} mode: {e}",
                dev.name,
                mode.name()
            )),
        })?;
    let link = FdLink::try_from(program.take_link(link_id).map_err(bpf("taking the link"))?)
        .map_err(|_| {
            // The kernel fell back to a netlink attachment, which cannot be
            // pinned and would outlive us unmanaged: refuse.
            Error::Bpf("the kernel does not support XDP bpf_links (needs Linux 5.9+)".into())
        })?;

    // Pin into a temporary directory and rename it into place, so that a
    // reader never sees a half-made directory.
    // (bpffs refuses names with a dot.)
    let tmp = PathBuf::from(format!("{}-tmp{}", dir.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    create_private_dir(&tmp)?;
    let pinned = pin_all(&mut ebpf, link, &tmp, mode).and_then(|()| {
        std::fs::rename(&tmp, dir).map_err(|e| Error::io("renaming the pin directory", e))
    });
    if pinned.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    pinned
}

/// Pins program, maps and link into `dir`. The link goes last: once it is
/// pinned, the program stays attached after we exit.
fn pin_all(ebpf: &mut Ebpf, link: FdLink, dir: &Path, mode: XdpMode) -> Result<()> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or_else(|| Error::Bpf("program missing from the object".into()))?
        .pin(dir.join("prog"))
        .map_err(bpf("pinning the program"))?;
    for name in [FLOWS_MAP, RINGS_MAP, SLOTS_MAP, COUNTERS_MAP] {
        ebpf.map(name)
            .ok_or_else(|| Error::Bpf(format!("map {name} missing from the object")))?
            .pin(dir.join(name))
            .map_err(bpf("pinning a map"))?;
    }
    link.pin(dir.join(mode.link_pin()))
        .map_err(bpf("pinning the link"))?;
    Ok(())
}

/// Removes the program from `dev` (unpinning the link detaches it).
/// Returns false if none was attached.
pub fn detach(dev: &NetDev) -> Result<bool> {
    let dir = pin_dir(dev)?;
    let _lock = lock()?;
    let attached = Attached::find(&dir, dev)?.is_some();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
    }
    Ok(attached)
}

/// The pin directory of `dev`, mounting bpffs first if needed.
pub(super) fn pin_dir(dev: &NetDev) -> Result<PathBuf> {
    ensure_bpffs()?;
    create_private_dir(Path::new(PIN_ROOT))?;
    Ok(Path::new(PIN_ROOT).join(format!("ns{}-if{}", netns_inode()?, dev.ifindex)))
}

/// Mounts bpffs on /sys/fs/bpf when it is not there (as bpftool does).
pub(super) fn ensure_bpffs() -> Result<()> {
    if is_bpffs(Path::new(BPFFS)) {
        return Ok(());
    }
    let target = c_path(Path::new(BPFFS));
    // SAFETY: all arguments are valid NUL-terminated strings or null.
    let ret = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if ret != 0 {
        return Err(Error::privileged(
            "mounting bpffs on /sys/fs/bpf",
            io::Error::last_os_error(),
        ));
    }
    MOUNTED_BPFFS.store(true, std::sync::atomic::Ordering::Relaxed);
    log::debug!("mounted bpffs on {BPFFS}");
    Ok(())
}

/// Set when this process found no bpffs and mounted one: the usual sign of
/// a mount namespace of its own (as under `ip netns exec`, whose fresh /sys
/// has none), where the pins end with the process and pins made elsewhere
/// are not visible.
static MOUNTED_BPFFS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(super) fn private_mounts() -> bool {
    MOUNTED_BPFFS.load(std::sync::atomic::Ordering::Relaxed)
}

fn is_bpffs(path: &Path) -> bool {
    let c = c_path(path);
    // SAFETY: statfs is plain data; zeroed is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid path string and st a valid buffer.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC }
}

fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::privileged("creating the pin directory", e)),
    }
}

/// An exclusive lock over attach and detach, on the pin root directory.
pub(super) fn lock() -> Result<File> {
    let dir =
        File::open(PIN_ROOT).map_err(|e| Error::privileged("opening /sys/fs/bpf/vipcheck", e))?;
    // SAFETY: flock on a valid fd; the lock is released when `dir` is closed.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io(
            "locking the pin directory",
            io::Error::last_os_error(),
        ));
    }
    Ok(dir)
}

pub(super) fn open_map(dir: &Path, name: &str) -> Result<Map> {
    let data = MapData::from_pin(dir.join(name)).map_err(bpf("opening a pinned map"))?;
    Map::from_map_data(data).map_err(bpf("opening a pinned map"))
}

pub(super) fn c_path(path: &Path) -> std::ffi::CString {
    // Our paths are built from constants and numbers: no NUL inside.
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}
