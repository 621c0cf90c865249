//! Builds the XDP program (`checker-ebpf`, for bpfel-unknown-none with the
//! nightly toolchain and bpf-linker) into OUT_DIR, where `src/xdp.rs` embeds
//! it with `include_bytes_aligned!`. `cargo xtask setup` installs both tools.
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
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
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
