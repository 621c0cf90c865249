//! The simulated real server: a smoltcp interface of its own with the
//! real server's MAC and the VIP, serving the response (over TLS for
//! https), and the TLS material of the simulation.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use super::wire::Wire;
use super::{Kind, SERVER_MAC, TLS_NAME, VIP, sim_tsval};
use crate::engine::stack::FlowParams;

/// The response body of `len` bytes: printable, and different at every
/// offset of a line so that a misplaced segment shows in the MD5.
pub(super) fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + ((i / 64 + i % 64) % 26) as u8
            }
        })
        .collect()
}

/// The TLS material of the simulation: a CA and a server certificate
/// for [`TLS_NAME`] (Ed25519, fixed serials and dates: the handshake's
/// lengths never change), made once per process.
struct Material {
    ca: rustls::pki_types::CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

fn material() -> &'static Material {
    static MATERIAL: OnceLock<Material> = OnceLock::new();
    MATERIAL.get_or_init(|| {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose, PKCS_ED25519, SerialNumber, date_time_ymd,
        };
        let dates = |params: &mut CertificateParams, serial: u64| {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2099, 1, 1);
            params.serial_number = Some(SerialNumber::from(serial));
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "vipcheck sim CA");
        dates(&mut ca, 1);
        let ca_key = KeyPair::generate_for(&PKCS_ED25519).expect("CA key");
        let ca = CertifiedIssuer::self_signed(ca, ca_key).expect("CA");
        let mut params = CertificateParams::new(vec![TLS_NAME.to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, TLS_NAME);
        dates(&mut params, 2);
        let key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
        let cert = params.signed_by(&key, &ca).expect("certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
                    .expect("a PKCS#8 key"),
            )
            .expect("server TLS config");
        Material {
            ca: ca.der().clone(),
            server: Arc::new(server),
        }
    })
}

/// The client's TLS configuration, as `tls::config` makes it with `--ca`
/// (the sim's CA), made for each run: its session cache is the run's own,
/// so no run resumes another's session.
pub(super) fn client_tls() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(material().ca.clone()).expect("the sim's CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The simulated real server: a smoltcp interface with the real server's
/// MAC and the VIP (as a real server carries it on its loopback),
/// listening on VIP:PORT. For HTTP(S) it answers the request's head with
/// `200 OK` and the body, then closes (as nginx does for
/// `Connection: close`).
pub(super) struct Server {
    iface: Interface,
    device: Wire,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    port: u16,
    kind: Kind,
    app: App,
}

/// The server's side of one connection.
#[derive(Default)]
struct App {
    request: Vec<u8>,
    out: Vec<u8>,
    answered: bool,
    closing: bool,
    tls: Option<rustls::ServerConnection>,
    tls_failed: bool,
}

impl Server {
    pub(super) fn new(params: &FlowParams, kind: Kind, seed: u64) -> Server {
        let mut device = Wire::default();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(SERVER_MAC.0)));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddr::V4(VIP).into(), 0));
        });
        // The LB's MAC is known (it sent the SYN): no ARP on the wire.
        let IpAddr::V4(local) = params.local_ip else {
            unreachable!("the sim is IPv4")
        };
        device.rx.push(Bytes::from(crate::wire::arp::reply_frame(
            params.local_mac,
            local,
            SERVER_MAC,
            VIP,
        )));
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        // Timestamps, as a Linux real server answers them.
        socket.set_tsval_generator(Some(sim_tsval));
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(socket);
        let mut server = Server {
            iface,
            device,
            sockets,
            handle,
            port: params.port,
            kind,
            app: App::default(),
        };
        server.listen();
        server
    }

    fn listen(&mut self) {
        let socket = self.sockets.get_mut::<tcp::Socket>(self.handle);
        socket
            .listen((IpAddr::V4(VIP), self.port))
            .expect("listen on VIP:PORT");
        self.app = App {
            tls: matches!(self.kind, Kind::Https(_)).then(|| {
                rustls::ServerConnection::new(material().server.clone()).expect("TLS server")
            }),
            ..App::default()
        };
    }

    pub(super) fn receive(&mut self, frame: Bytes) {
        self.device.rx.push(frame);
    }

    pub(super) fn step(&mut self, t: Duration) -> Vec<Bytes> {
        let now = SmolInstant::from_micros(t.as_micros() as i64);
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.serve();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.device.tx.drain(..).map(Bytes::from).collect()
    }

    pub(super) fn poll_delay(&mut self, t: Duration) -> Option<Duration> {
        let now = SmolInstant::from_micros(t.as_micros() as i64);
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }

    fn serve(&mut self) {
        if self.sockets.get::<tcp::Socket>(self.handle).state() == State::Closed {
            // A real server listens again for the next connection.
            self.listen();
            return;
        }
        let len = match self.kind {
            Kind::Tcp => return,
            Kind::Http(n) | Kind::Https(n) => n,
        };
        let socket = self.sockets.get_mut::<tcp::Socket>(self.handle);
        let app = &mut self.app;
        let mut cipher = Vec::new();
        while socket.can_recv() {
            let got = socket.recv(|data| {
                let n = data.len();
                (n, data.to_vec())
            });
            match got {
                Ok(data) if !data.is_empty() => match app.tls {
                    Some(_) => cipher.extend_from_slice(&data),
                    None => app.request.extend_from_slice(&data),
                },
                _ => break,
            }
        }
        if let Some(conn) = &mut app.tls {
            let mut rest = &cipher[..];
            while !rest.is_empty() && !app.tls_failed {
                match conn.read_tls(&mut rest) {
                    Ok(0) | Err(_) => app.tls_failed = true,
                    Ok(_) => {}
                }
                if conn.process_new_packets().is_err() {
                    app.tls_failed = true;
                }
                let mut plain = [0u8; 4096];
                loop {
                    match std::io::Read::read(&mut conn.reader(), &mut plain) {
                        Ok(n) if n > 0 => app.request.extend_from_slice(&plain[..n]),
                        _ => break,
                    }
                }
            }
        }
        if !app.answered && app.request.windows(4).any(|w| w == b"\r\n\r\n") {
            app.answered = true;
            let mut response = format!(
                "HTTP/1.1 200 OK\r\nServer: vipcheck-sim\r\nContent-Type: text/plain\r\n\
                 Content-Length: {len}\r\nConnection: close\r\n\r\n"
            )
            .into_bytes();
            response.extend_from_slice(&body(len));
            match &mut app.tls {
                Some(conn) => {
                    let _ = std::io::Write::write_all(&mut conn.writer(), &response);
                    conn.send_close_notify();
                }
                None => app.out = response,
            }
        }
        if let Some(conn) = &mut app.tls {
            while conn.wants_write() {
                if conn.write_tls(&mut app.out).is_err() {
                    break;
                }
            }
        }
        if !app.out.is_empty() && socket.can_send() {
            let n = socket.send_slice(&app.out).unwrap_or(0);
            app.out.drain(..n);
        }
        if (app.answered || app.tls_failed) && app.out.is_empty() && !app.closing {
            app.closing = true;
            socket.close();
        }
    }
}
