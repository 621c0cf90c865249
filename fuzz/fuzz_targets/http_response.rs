//! The HTTP response parser on arbitrary bytes in arbitrary splits, with
//! small and default limits, then `finish` (the server closes).
//!
//! Input: byte 0 chooses HEAD or not and the limits, byte 1 seeds the split
//! sizes (0: one piece), the rest is the response. Properties: no panic;
//! body bytes handed out match `body_len` and stay within the limit; and
//! how the stream was split changes nothing: the same outcome, head, body
//! and trailers as when the whole response comes at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipcheck::wire::http::{Limits, ResponseParser};

const HEADS: [usize; 4] = [64 * 1024, 16, 256, 4096];
const BODIES: [u64; 4] = [4 * 1024 * 1024, 0, 10, 1000];

#[derive(Debug, PartialEq)]
struct Outcome {
    /// Ok (complete, or ended by the close) or the error's kind.
    result: Result<(), String>,
    head: Option<vipcheck::wire::http::Head>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

fn parse(response: &[u8], head_request: bool, limits: Limits, split: u8) -> Outcome {
    let mut parser = ResponseParser::new(head_request, limits);
    let mut body = Vec::new();
    let mut rest = response;
    let mut state = u32::from(split);
    let mut result = Ok(());
    let mut done = false;
    while !rest.is_empty() {
        let n = if split == 0 {
            rest.len()
        } else {
            // xorshift: pieces of 1 to 16 bytes.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as usize % 16 + 1).min(rest.len())
        };
        let (piece, next) = rest.split_at(n);
        rest = next;
        match parser.feed(piece, &mut |b: &[u8]| body.extend_from_slice(b)) {
            Ok(true) => {
                done = true;
                assert!(parser.is_done());
                break;
            }
            Ok(false) => assert!(!parser.is_done()),
            Err(e) => {
                result = Err(kind(&e));
                let _ = e.to_string();
                break;
            }
        }
    }
    if result.is_ok() && !done {
        if let Err(e) = parser.finish() {
            result = Err(kind(&e));
            let _ = e.to_string();
        }
    }
    // (A failure may count the piece it refused.)
    if result.is_ok() {
        assert_eq!(body.len() as u64, parser.body_len());
    }
    assert!(body.len() as u64 <= limits.max_body);
    Outcome {
        result,
        head: parser.head().cloned(),
        body,
        trailers: parser.trailers().to_vec(),
    }
}

/// The variant of an error (its details may say how much had come).
fn kind(e: &vipcheck::wire::http::HttpError) -> String {
    format!("{e:?}")
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("")
        .to_string()
}

fuzz_target!(|data: &[u8]| {
    let [flags, split, response @ ..] = data else {
        return;
    };
    let head_request = flags & 1 != 0;
    let limits = Limits {
        max_head: HEADS[usize::from(flags >> 1) & 3],
        max_body: BODIES[usize::from(flags >> 3) & 3],
    };
    let whole = parse(response, head_request, limits, 0);
    if *split != 0 {
        let pieces = parse(response, head_request, limits, *split);
        // A failure may come after more or fewer body bytes were handed
        // out: only its kind must agree.
        if whole.result.is_ok() && pieces.result.is_ok() {
            assert_eq!(whole, pieces, "the split changed the response");
        } else {
            assert_eq!(whole.result, pieces.result, "the split changed the outcome");
        }
    }
});
