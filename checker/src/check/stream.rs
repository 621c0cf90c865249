//! A dialogue over a check's TCP flow, sans-IO: what to send, what came,
//! whether the server closed. DNS over TCP, SMTP, and `tcp --send
//! --expect` are dialogues; [`converse`] drives one over the flow's
//! userspace stack until it has its result or the deadline passes.

use smoltcp::socket::tcp::State;

use crate::check::Flow;
use crate::error::Result;

/// One protocol's side of a TCP conversation, without I/O.
pub(crate) trait Dialogue {
    /// The bytes to send now (those [`Dialogue::sent`] has not taken).
    fn outgoing(&self) -> &[u8];
    /// `n` bytes of [`Dialogue::outgoing`] went into the socket.
    fn sent(&mut self, n: usize);
    /// Bytes from the server; `true` once the dialogue has its result.
    fn received(&mut self, data: &[u8]) -> bool;
    /// The server closed its side (a FIN), or reset the connection:
    /// `true` once the dialogue has its result (it always has by then).
    fn closed(&mut self, reset: bool) -> bool;
    /// Everything sent is out and acknowledged by the server: `true` if
    /// that is the dialogue's result (`tcp --send` without `--expect`).
    fn acknowledged(&mut self) -> bool {
        false
    }
}

/// Runs `dialogue` over `flow` (connected) until it has its result:
/// `false` if the deadline came first.
pub(crate) async fn converse(flow: &mut Flow, dialogue: &mut impl Dialogue) -> Result<bool> {
    let mut buf = vec![0u8; 4096];
    let over = flow
        .drive(|stack| {
            let socket = stack.socket();
            flush(dialogue, socket);
            while socket.can_recv() {
                let n = match socket.recv_slice(&mut buf) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                if dialogue.received(&buf[..n]) {
                    return Some(());
                }
            }
            flush(dialogue, socket);
            if dialogue.outgoing().is_empty()
                && socket.send_queue() == 0
                && socket.may_send()
                && dialogue.acknowledged()
            {
                return Some(());
            }
            if stack.state() == State::Closed {
                return dialogue.closed(true).then_some(());
            }
            if !stack.socket().may_recv() {
                return dialogue.closed(false).then_some(());
            }
            None
        })
        .await?;
    Ok(over.is_some())
}

/// What `dialogue` has to send goes into the socket, as far as it takes.
fn flush(dialogue: &mut impl Dialogue, socket: &mut smoltcp::socket::tcp::Socket<'static>) {
    let out = dialogue.outgoing();
    if !out.is_empty() && socket.can_send() {
        let n = socket.send_slice(out).unwrap_or(0);
        dialogue.sent(n);
    }
}
