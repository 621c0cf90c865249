//! The DNS reply judge on arbitrary bytes, and the TCP framing on them.
//!
//! Input: bytes 0-1 are the query's id, byte 2 chooses the query type; the
//! rest is the reply. Properties: no panic; an accepted reply is what
//! keepalived's header rule accepts, is not truncated, and lists no more
//! addresses than records; a stray (ignored) datagram is one keepalived's
//! rule refuses before the RCODE; a complete TCP frame lies within the
//! stream and takes its length prefix plus the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipcheck::wire::dns::{self, DnsProblem, Query, RecordType, TcpFrame};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let id = u16::from_be_bytes([data[0], data[1]]);
    let rtype = RecordType::ALL[usize::from(data[2]) % RecordType::ALL.len()];
    let reply = &data[3..];
    let query = Query::new(id, "fuzz.example", rtype).expect("a valid name");
    match dns::judge(&query, reply) {
        Ok(answer) => {
            assert_eq!(dns::keepalived_rule(id, reply), Ok(()));
            assert_eq!(reply[2] & 0x02, 0, "TC set");
            assert!(answer.addresses.len() <= answer.records.len());
            let _ = answer.describe();
        }
        Err(problem) => {
            let _ = problem.to_string();
            if problem.is_stray() {
                assert_eq!(dns::keepalived_rule(id, reply), Err(problem.clone()));
            }
            if matches!(problem, DnsProblem::Truncated | DnsProblem::Malformed(_)) {
                assert_eq!(dns::keepalived_rule(id, reply), Ok(()));
            }
        }
    }
    match dns::tcp_frame(reply) {
        TcpFrame::Complete { message, used } => {
            assert_eq!(used, message.len() + 2);
            assert!(used <= reply.len());
            let _ = dns::judge(&query, message);
        }
        TcpFrame::Incomplete { needed } => {
            assert!(needed > 0 && reply.len() + needed <= 2 + dns::MAX_MESSAGE);
        }
    }
});
