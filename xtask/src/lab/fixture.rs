//! The project's own HTTP test server: fixed responses that nginx cannot
//! give (chunked with trailers, LF-only heads, a response in 1-byte
//! segments) and hostile ones (a head or body that never ends, a short or
//! reset body, a bad chunk size, silence).
//!
//! It runs in threads of the test process; only its listening socket is
//! made inside the real server's namespace, which is enough for every
//! connection it accepts to live there too.

// unsafe: libc calls (namespaces, signals, process accounting), each with a SAFETY line.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use super::netns;

/// Port of the fixture server on its real server.
pub const FIXTURE_PORT: u16 = 8080;

/// Body of `/chunked`, sent in three chunks followed by a trailer.
pub const CHUNKED_BODY: &str = "hello, chunked world";
/// Body of `/text`.
pub const TEXT_BODY: &str = "status: healthy\nversion: 1.2.3\n";
/// Body of `/bytewise`, whose whole response is sent one byte per segment.
pub const BYTEWISE_BODY: &str = "abcdefghijklmnopqrstuvwxyz";

/// The running server; stopping it (drop) closes every connection.
pub struct Fixtures {
    listener: Arc<TcpListener>,
    connections: Arc<Connections>,
    accept: Option<JoinHandle<()>>,
}

/// A clone of each open connection, to shut it down on stop. A handler
/// removes its clone before it closes, or the socket would stay open.
type Connections = Mutex<HashMap<u64, TcpStream>>;

/// How a handler ends its connection.
enum Ending {
    Close,
    Reset,
}

impl Fixtures {
    pub(crate) fn start(ns: &str) -> Result<Fixtures> {
        let listener = netns::run_in(ns, || TcpListener::bind(("0.0.0.0", FIXTURE_PORT)))
            .with_context(|| format!("cannot listen on port {FIXTURE_PORT} in {ns}"))?;
        let listener = Arc::new(listener);
        let connections = Arc::new(Mutex::new(HashMap::new()));
        let accept = {
            let listener = Arc::clone(&listener);
            let connections = Arc::clone(&connections);
            std::thread::spawn(move || accept_loop(&listener, &connections))
        };
        Ok(Fixtures {
            listener,
            connections,
            accept: Some(accept),
        })
    }
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        // shutdown(2) on a listening socket wakes the blocked accept().
        // SAFETY: plain syscall on an fd that the listener keeps open.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        shutdown_all(&self.connections);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, connections: &Arc<Connections>) {
    let mut handlers = Vec::new();
    let mut next_id = 0u64;
    while let Ok((mut stream, _)) = listener.accept() {
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = next_id;
        next_id += 1;
        lock(connections).insert(id, clone);
        let connections = Arc::clone(connections);
        handlers.push(std::thread::spawn(move || {
            let ending = serve(&mut stream).unwrap_or(Ending::Close);
            lock(&connections).remove(&id);
            if let Ending::Reset = ending {
                let _ = set_linger_zero(&stream);
            }
            drop(stream);
        }));
    }
    // Stopped: make every handler end, then wait for them.
    shutdown_all(connections);
    for handler in handlers {
        let _ = handler.join();
    }
}

fn lock(connections: &Connections) -> std::sync::MutexGuard<'_, HashMap<u64, TcpStream>> {
    connections
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn shutdown_all(connections: &Connections) {
    for stream in lock(connections).values() {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// Reads the request head and answers it according to its path.
fn serve(stream: &mut TcpStream) -> std::io::Result<Ending> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if stream.read(&mut byte)? == 0 || head.len() > 16 * 1024 {
            return Ok(Ending::Close);
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("");
    let path = request_line.next().unwrap_or("");
    let written = match path {
        "/chunked" => {
            let (a, rest) = CHUNKED_BODY.split_at(5);
            let (b, c) = rest.split_at(7);
            let response = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
                 {:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n{:x}\r\n{c}\r\n0\r\nX-Checksum: none\r\n\r\n",
                a.len(),
                b.len(),
                c.len()
            );
            stream.write_all(response.as_bytes())
        }
        "/close" => stream.write_all(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body\n",
        ),
        "/lf" => {
            stream.write_all(b"HTTP/1.1 200 OK\nContent-Length: 8\nX-Line-Ends: lf\n\nlf only\n")
        }
        "/204" => stream.write_all(b"HTTP/1.1 204 No Content\r\nX-Fixture: 204\r\n\r\n"),
        "/head" => {
            // The length of the body a GET would get; a HEAD gets none.
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")?;
            if method != "HEAD" {
                stream.write_all(&[b'x'; 1000])?;
            }
            Ok(())
        }
        "/bytewise" => {
            stream.set_nodelay(true)?;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{BYTEWISE_BODY}",
                BYTEWISE_BODY.len()
            );
            for b in response.as_bytes() {
                stream.write_all(&[*b])?;
                // Let each byte leave as its own segment.
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        }
        "/header" => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nX-Fixture: yes\r\nContent-Length: 2\r\n\r\nok")
        }
        "/text" => stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{TEXT_BODY}",
                TEXT_BODY.len()
            )
            .as_bytes(),
        ),
        "/302" => {
            stream.write_all(b"HTTP/1.1 302 Found\r\nLocation: /text\r\nContent-Length: 0\r\n\r\n")
        }
        "/endless-head" => {
            stream.write_all(b"HTTP/1.1 200 OK\r\n")?;
            loop {
                stream.write_all(b"X-Padding: 0123456789012345678901234567890123456789\r\n")?;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        "/endless-body" => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")?;
            let block = [b'z'; 16 * 1024];
            loop {
                stream.write_all(&block)?;
            }
        }
        "/short" => stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"),
        "/bad-chunk" => stream.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n",
        ),
        "/reset" => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")?;
            stream.write_all(&[b'r'; 100])?;
            std::thread::sleep(Duration::from_millis(20));
            return Ok(Ending::Reset);
        }
        "/ssh" => {
            // What an SSH server says first, then it waits, as one does.
            stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n")?;
            while stream.read(&mut byte)? > 0 {}
            Ok(())
        }
        "/silent" => {
            // Never answer; end when the client (or the server's stop) does.
            while stream.read(&mut byte)? > 0 {}
            Ok(())
        }
        _ => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    };
    written.map(|()| Ending::Close)
}

/// Makes the close send an RST: SO_LINGER with a zero timeout.
fn set_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a valid linger struct of the size passed.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
