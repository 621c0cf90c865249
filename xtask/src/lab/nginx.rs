//! The HTTP servers of the real servers: Debian's nginx, one
//! single-process instance per namespace (no master, no daemon: the process
//! we start is the server, stopped by its pid), everything it writes kept
//! in the lab's temporary directory.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{HTTP_PORT, netns};

const NGINX: &str = "/usr/sbin/nginx";

/// Text of `index.html`.
pub const INDEX_HTML: &str = "vipcheck lab\n";

/// Files of the document root beside `index.html`, with their sizes; their
/// content is [`pseudo_random`]`(size)`.
pub const FILES: [(&str, usize); 2] = [("20k.bin", 20 * 1024), ("5m.bin", 5 * 1024 * 1024)];

/// Response header naming the real server that answered.
pub const SERVER_HEADER: &str = "X-Lab-Server";

/// Deterministic bytes (splitmix64 seeded with `len`), so a test can check
/// a body without reading the file.
pub fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = len as u64;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Writes the document root shared by every server of a lab.
pub(crate) fn write_docroot(root: &Path) -> Result<()> {
    fs::create_dir_all(root)?;
    fs::write(root.join("index.html"), INDEX_HTML)?;
    for (name, size) in FILES {
        fs::write(root.join(name), pseudo_random(size))?;
    }
    Ok(())
}

/// One running nginx.
pub(crate) struct Nginx {
    pub(crate) child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx in namespace `ns`, listening on [`HTTP_PORT`] of `ip` (and any
    /// other address of the namespace), and on the HTTPS ports with the
    /// certificates in `tls` (see the `tls` module), serving `docroot`, with its
    /// configuration, logs and temporary files in `dir`. `name` goes into
    /// the [`SERVER_HEADER`] of every response.
    pub(crate) fn start(
        ns: &str,
        ip: Ipv4Addr,
        name: &str,
        dir: &Path,
        docroot: &Path,
        tls: &Path,
    ) -> Result<Nginx> {
        fs::create_dir_all(dir)?;
        let conf = dir.join("nginx.conf");
        fs::write(&conf, config(name, dir, docroot, tls))?;
        let log = fs::File::create(dir.join("stderr.log"))?;
        let child = netns::command(ns, NGINX)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {NGINX} in {ns}"))?;
        Ok(Nginx {
            child,
            addr: SocketAddr::from((ip, HTTP_PORT)),
            dir: dir.to_owned(),
        })
    }

    /// Waits until the server accepts TCP connections, as seen from
    /// namespace `client_ns`; fails early with nginx's own words if it
    /// exits.
    pub(crate) fn wait_ready(&mut self, client_ns: &str, deadline: Instant) -> Result<()> {
        let addr = self.addr;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
                bail!("nginx for {addr} exited ({status}): {}", log.trim());
            }
            let connected = netns::run_in(client_ns, || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            });
            if connected.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nginx on {addr} does not accept connections in time");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn config(name: &str, dir: &Path, docroot: &Path, tls: &Path) -> String {
    use super::tls::{
        CA_FILE, CERT_FILE, EXPIRED_CERT_FILE, EXPIRED_KEY_FILE, HTTPS_EXPIRED_PORT,
        HTTPS_MTLS_PORT, HTTPS_PORT, HTTPS_SOON_PORT, KEY_FILE, SOON_CERT_FILE, SOON_KEY_FILE,
    };
    let d = dir.display();
    let root = docroot.display();
    let t = tls.display();
    format!(
        "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ text/html html; }}
    default_type application/octet-stream;
    server {{
        listen {HTTP_PORT};
        listen [::]:{HTTP_PORT};
        root {root};
        add_header {SERVER_HEADER} {name} always;
    }}
    server {{
        listen {HTTPS_PORT} ssl;
        listen [::]:{HTTPS_PORT} ssl;
        ssl_certificate {t}/{CERT_FILE};
        ssl_certificate_key {t}/{KEY_FILE};
        root {root};
        add_header {SERVER_HEADER} {name} always;
    }}
    server {{
        listen {HTTPS_SOON_PORT} ssl;
        listen [::]:{HTTPS_SOON_PORT} ssl;
        ssl_certificate {t}/{SOON_CERT_FILE};
        ssl_certificate_key {t}/{SOON_KEY_FILE};
        root {root};
        add_header {SERVER_HEADER} {name} always;
    }}
    server {{
        listen {HTTPS_EXPIRED_PORT} ssl;
        ssl_certificate {t}/{EXPIRED_CERT_FILE};
        ssl_certificate_key {t}/{EXPIRED_KEY_FILE};
        root {root};
    }}
    server {{
        listen {HTTPS_MTLS_PORT} ssl;
        ssl_certificate {t}/{CERT_FILE};
        ssl_certificate_key {t}/{KEY_FILE};
        ssl_client_certificate {t}/{CA_FILE};
        ssl_verify_client on;
        root {root};
    }}
}}
"
    )
}
