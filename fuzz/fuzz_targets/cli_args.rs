//! The native command line (`cli::Cli::try_parse_args`; nothing is run):
//! one argument a line after `vipcheck`, any bytes (not only UTF-8). No
//! panic; a usage error renders, as its one-line form too; a check's
//! target and HTTP check build; a line that parses as native is never
//! read as a C checker's by its shape.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use vipcheck::front::cli::{Cli, Command, usage_line};

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == b'\n')
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    let argv = std::iter::once(OsString::from("vipcheck")).chain(args.iter().cloned());
    let shape = vipcheck::probe::c_line::by_shape(&args);
    match Cli::try_parse_args(argv) {
        Ok(cli) => match &cli.command {
            _ if shape.is_some() => panic!("native line read as {shape:?}"),
            Command::Tcp(a) => {
                assert_ne!(a.probe().port, 0);
            }
            Command::Http(a) => {
                assert_ne!(a.probe().port, 0);
                assert!(a.spec().path.starts_with('/'));
            }
            Command::Https(a) => {
                assert_ne!(a.probe().port, 0);
            }
            _ => {}
        },
        Err(e) => {
            let _ = e.to_string();
            let line = usage_line(&e, &args);
            assert!(!line.contains('\n'), "{line:?}");
        }
    }
});
