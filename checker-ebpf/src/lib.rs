#![no_std]
// This file exists so that `checker` can name this crate as a build
// dependency (cargo rebuilds it when the XDP program changes); the program
// itself is `src/main.rs`, built for bpfel-unknown-none by aya-build.
