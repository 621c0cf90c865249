//! The C checkers' command lines as keepalived's MISC_CHECK runs them
//! (`compat::parse_line`: clap's parse, then the checks clap cannot
//! express; nothing is run). Input: one word a line, the first the name
//! (`check_tcp_raw`, `check_http_get_raw`, `check_http_raw` or another).
//! No panic; an error is one line; a line taken has a port and, for HTTP,
//! a path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipcheck::probe::CheckSpec;
use vipcheck::probe::c_line::parse_line;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut words = text.split('\n').map(str::to_string);
    let Some(name) = words.next() else {
        return;
    };
    let args: Vec<String> = words.collect();
    match parse_line(&name, &args) {
        Ok(line) => {
            assert_ne!(line.port, 0);
            if let CheckSpec::Http(spec) | CheckSpec::Https(spec, _) = &line.check {
                assert!(spec.path.starts_with('/'), "{:?}", spec.path);
            }
        }
        Err(message) => assert!(!message.contains('\n'), "{message:?}"),
    }
});
