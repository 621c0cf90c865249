//! Builds the XDP program (`checker-ebpf`, for bpfel-unknown-none with the
//! nightly toolchain and bpf-linker) into OUT_DIR, where `src/xdp.rs` embeds
//! it with `include_bytes_aligned!`. `cargo xtask setup` installs both tools.
fn main() -> anyhow::Result<()> {
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
