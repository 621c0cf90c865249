//! keepalived.conf text into audit targets (`config::keepalived::load_str`),
//! as the file /nonexistent-vipcheck-fuzz/keepalived.conf: a relative
//! include then matches no file (it is skipped, with the reason). Inputs
//! that could name a file elsewhere (a `/` with an `include` or a `$`
//! parameter, which can spell `include` or a path) are left out: the
//! fuzzer must not read this machine's files. No panic; an
//! error names the file and line; a target has a port, a VIP and real
//! server of one family, and an HTTP path.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vipcheck::config::keepalived::load_str;
use vipcheck::probe::CheckSpec;

const PATH: &str = "/nonexistent-vipcheck-fuzz/keepalived.conf";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if text.contains('/') && (text.contains("include") || text.contains('$')) {
        return;
    }
    match load_str(&text, Path::new(PATH)) {
        Ok(loaded) => {
            for target in &loaded.targets {
                assert!(target.origin.starts_with(PATH), "{}", target.origin);
                assert_ne!(target.probe.port, 0);
                assert_eq!(
                    target.probe.real_server.is_ipv4(),
                    target.probe.vip.is_ipv4()
                );
                if let CheckSpec::Http(spec) | CheckSpec::Https(spec, _) = &target.probe.check {
                    assert!(spec.path.starts_with('/'), "{:?}", spec.path);
                }
            }
        }
        Err(e) => {
            assert!(e.to_string().starts_with(PATH), "{e}");
        }
    }
});
