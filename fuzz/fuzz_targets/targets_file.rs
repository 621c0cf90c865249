//! The audit's targets file (TOML, `config::targets::load_str`). No panic;
//! an error names the file; a target has a port, a VIP and real server of
//! one family, and an HTTP path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipcheck::config::targets::load_str;
use vipcheck::probe::CheckSpec;

const NAME: &str = "targets.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_str(text, NAME) {
        Ok(loaded) => {
            for target in &loaded.targets {
                assert!(target.origin.starts_with(NAME), "{}", target.origin);
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
            assert!(e.to_string().starts_with(NAME), "{e}");
        }
    }
});
