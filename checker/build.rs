//! Builds the XDP program (`checker-ebpf`, for bpfel-unknown-none with the
//! nightly toolchain and bpf-linker; once for every build of the checker, see
//! [`shared_ebpf_dir`]) into OUT_DIR, where `src/xdp.rs` embeds it with
//! `include_bytes_aligned!`. `cargo xtask setup` installs both tools.
//! Links the unwinder statically (see [`static_unwinder`]) and the binary
//! at a fixed address (see [`fixed_address`]).

// unsafe: setting the environment of this single-threaded build script.
#![allow(unsafe_code)]
fn main() -> anyhow::Result<()> {
    static_unwinder()?;
    fixed_address()?;
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root_dir = std::path::Path::new(&manifest_dir).join("../checker-ebpf");
    let root_dir = root_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", root_dir.display()))?;
    let package = aya_build::Package {
        name: "checker-ebpf",
        root_dir,
        ..Default::default()
    };
    // The nested cargo's progress lines would each become a cargo warning.
    // SAFETY: build scripts are single-threaded here; nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    // Not passed on: the outer build's flags (see [`shared_ebpf_dir`]) and
    // build directory (the release build's instrumented half sets one: the
    // nested cargo would build there, and wait for the lock the outer
    // cargo holds on it).
    for (key, _) in std::env::vars_os() {
        let outer = key.to_str().is_some_and(|k| {
            k == "RUSTFLAGS"
                || k == "CARGO_BUILD_RUSTFLAGS"
                || k == "CARGO_BUILD_BUILD_DIR"
                || (k.starts_with("CARGO_TARGET_") && k.ends_with("_RUSTFLAGS"))
        });
        if outer {
            // SAFETY: as above.
            unsafe { std::env::remove_var(&key) };
        }
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let Some(shared) = shared_ebpf_dir(&manifest_dir) else {
        return aya_build::build_ebpf([package], aya_build::Toolchain::default());
    };
    // One build of the XDP program for every build of the checker.
    let lock = std::fs::File::create(shared.join("lock"))?;
    lock.lock()?;
    // SAFETY: as above.
    unsafe { std::env::set_var("OUT_DIR", &shared) };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())?;
    std::fs::copy(shared.join(PROGRAM), out_dir.join(PROGRAM))?;
    Ok(())
}

/// The XDP program's file (`checker-ebpf`'s binary), which `src/xdp`
/// embeds from OUT_DIR.
const PROGRAM: &str = "vipcheck-xdp";

/// Where the XDP program is built for every build of the checker:
/// `target/ebpf/` of the workspace. aya-build builds it in OUT_DIR, which
/// each target directory and profile has its own of (the tests' debug
/// build, clippy, the release build and its instrumented twin, the fuzz
/// build): each built core for BPF and the program again, the same
/// bytes each time (its flags and profile are the nested cargo's own),
/// a minute of CI apiece. Builds take turns under a lock. The flags of
/// the outer build (a profile to generate, a sanitizer) are not passed
/// on: they never reached the BPF target (aya-build sets its own), and
/// would only make the nested cargo's host builds (build scripts of
/// core's crates) differ from one outer build to the next. None (build
/// in OUT_DIR) when the workspace's target/ cannot be made.
fn shared_ebpf_dir(manifest_dir: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(manifest_dir).join("../target/ebpf");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// The unwinder (panics are caught in `main`, which turns them into one
/// line and exit 3) linked from libgcc_eh.a, as `gcc -static-libgcc`
/// does, rather than loaded from libgcc_s.so.1 at every start: finding,
/// mapping and relocating that library and running its constructor (a
/// CPU-feature probe whose `cpuid` instructions trap to the hypervisor in
/// a VM) was a tenth of a millisecond of every one-shot check's CPU. rustc
/// asks the linker for `-lgcc_s` by name; this directory, searched before
/// the system's, answers that name with a linker script naming the static
/// archive (from gcc, the linker rustc drives).
fn static_unwinder() -> anyhow::Result<()> {
    if std::env::var("CARGO_CFG_TARGET_OS")? != "linux"
        || std::env::var("CARGO_CFG_TARGET_ENV")? != "gnu"
    {
        return Ok(());
    }
    let dir = std::path::Path::new(&std::env::var("OUT_DIR")?).join("static-unwinder");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n")?;
    println!("cargo:rustc-link-search=native={}", dir.display());
    Ok(())
}

/// The `vipcheck` binary linked at a fixed address (not position
/// independent), unless `VIPCHECK_PIE=1` at build time. A position
/// independent binary is relocated by ld.so at every start: 19,000
/// pointers in 92 pages of tables (vtables, string slices), each page
/// copied on write, which was a seventh of a warm one-shot check's CPU
/// (0.2 ms of 1.4 ms above an empty process). The cost: the binary's own
/// code and data are not at a random address (the heap, the stack and the
/// libraries still are); vipcheck is Rust, `unsafe` only at the kernel's
/// interfaces. A site whose policy wants every binary PIE builds with
/// `VIPCHECK_PIE=1`.
fn fixed_address() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=VIPCHECK_PIE");
    if std::env::var("VIPCHECK_PIE").is_ok_and(|v| v == "1")
        || std::env::var("CARGO_CFG_TARGET_OS")? != "linux"
    {
        return Ok(());
    }
    println!("cargo:rustc-link-arg-bin=vipcheck=-no-pie");
    Ok(())
}
