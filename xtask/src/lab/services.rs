//! DNS, SMTP and UDP services of the real servers, from Debian packages,
//! for the dns/smtp/udp checks: opt-in ([`Lab::start_dns`],
//! [`Lab::start_smtp`], [`Lab::start_udp`], [`Lab::start_services`]), so a
//! test that needs none pays nothing. Every process runs in its host's
//! namespace, in the foreground (the process we start is the server,
//! stopped by its pid when the returned [`Services`] guard is dropped),
//! writing only into the lab's temporary directory; none has a network
//! beyond the lab (no upstream resolver, no mail delivery).
//!
//! | service | hosts | ports | program |
//! | --- | --- | --- | --- |
//! | DNS | ok, novip | [`DNS_PORT`] UDP and TCP | dnsmasq (dnsmasq-base) |
//! | SMTP | ok, novip | [`SMTP_PORT`], [`SMTP_MULTILINE_PORT`] | exim4 (exim4-daemon-light) |
//! | UDP echo | ok | [`UDP_ECHO_PORT`], bound to the VIPs | socat |
//! | UDP, wrong source | ok | [`UDP_WRONG_SOURCE_PORT`], bound to the wildcard | socat |
//!
//! Every service listens on each address of its host, the VIPs included
//! where the host has them on `lo` (`ok`), so a check through the VIP path
//! gets its answer from the VIP; `novip` runs the same configuration
//! without the VIP and so never answers VIP traffic. `closed` runs nothing:
//! UDP to it gets ICMP port unreachable from the VIP (no firewall in its
//! namespace, and the lab turns off its ICMP rate limits, see
//! `set_icmp_unlimited` in the lab module).

use std::fs;
use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::tls::{CERT_FILE, KEY_FILE};
use super::{Host, Lab, READY_TIMEOUT, VIP, VIP6, netns, process};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";
const EXIM: &str = "/usr/sbin/exim4";
const SOCAT: &str = "/usr/bin/socat";
/// The user exim4-daemon-light's exim drops to (to write its logs and
/// spool), from the package's postinst.
const EXIM_USER: &str = "Debian-exim";

/// The port of the DNS servers (UDP and TCP).
pub const DNS_PORT: u16 = 53;
/// A name the DNS servers answer (authoritatively): A [`DNS_A`], AAAA
/// [`DNS_AAAA`].
pub const DNS_NAME: &str = "www.lab.test";
/// The A record of [`DNS_NAME`]: the VIP.
pub const DNS_A: Ipv4Addr = VIP;
/// The AAAA record of [`DNS_NAME`]: the IPv6 VIP.
pub const DNS_AAAA: Ipv6Addr = VIP6;
/// The zone the servers are authoritative for, with [`DNS_NAME`] (and the
/// root, for its SOA only).
pub const DNS_ZONE: &str = "lab.test";
/// A name the servers answer with NXDOMAIN (authoritatively).
pub const DNS_ABSENT_NAME: &str = "absent.lab.test";
/// A name outside their zones: REFUSED (no recursion, no upstream).
pub const DNS_REFUSED_NAME: &str = "outside.example";
/// keepalived's DNS_CHECK default: an SOA query for the root. The servers
/// are authoritative for the root zone (`--auth-zone=.`), so `. SOA` gets
/// NOERROR, AA, with one SOA answer ([`DNS_SOA_MNAME`] [`DNS_SOA_RNAME`];
/// [`DNS_ZONE`] has the same SOA).
pub const DNS_SOA_NAME: &str = ".";
/// The MNAME of the root zone's SOA.
pub const DNS_SOA_MNAME: &str = "ns.lab.test";
/// The RNAME of the root zone's SOA.
pub const DNS_SOA_RNAME: &str = "hostmaster.lab.test";

/// The SMTP port: greeting `220 <host>.lab.test ` + [`SMTP_GREETING`],
/// EHLO/HELO → 250, QUIT → 221, every RCPT refused (550): nothing is ever
/// delivered.
pub const SMTP_PORT: u16 = 25;
/// The same server with a multi-line banner: [`SMTP_MULTILINE_LINES`]
/// lines, `220-` on all but the last (which keepalived's SMTP_CHECK fails
/// on).
pub const SMTP_MULTILINE_PORT: u16 = 2525;
/// The text of the greeting on [`SMTP_PORT`] after the host's name.
pub const SMTP_GREETING: &str = "ESMTP vipcheck lab";
/// Lines of the greeting on [`SMTP_MULTILINE_PORT`].
pub const SMTP_MULTILINE_LINES: usize = 3;

/// UDP echo on `ok`, bound to the VIP and to the IPv6 VIP (not to ok's
/// own addresses): replies leave from the VIP, as a correct LVS-DR UDP
/// service's do.
pub const UDP_ECHO_PORT: u16 = 7;
/// UDP echo on `ok` bound to the wildcard (`0.0.0.0` and `[::]`) and
/// replying with a plain `sendto` (no `IP_PKTINFO`): the reply to a
/// datagram sent to the VIP leaves from ok's own address (198.18.0.11,
/// `fd98:c612:0:1::b`), the classic LVS-DR UDP pitfall; a client expecting
/// the VIP never sees its answer.
pub const UDP_WRONG_SOURCE_PORT: u16 = 5007;

/// The host's name in DNS and SMTP: `ok.lab.test`.
pub fn lab_host_name(host: Host) -> String {
    format!("{}.lab.test", host.name())
}

/// The greeting line on [`SMTP_PORT`] of `host`, without CRLF.
pub fn smtp_greeting(host: Host) -> String {
    format!("220 {} {SMTP_GREETING}", lab_host_name(host))
}

/// Hosts running DNS and SMTP.
const DNS_SMTP_HOSTS: [Host; 2] = [Host::Ok, Host::NoVip];

/// Running services of a lab; dropping the guard (at the latest when the
/// test ends or panics, always before its lab) stops them by pid.
#[must_use = "dropping the guard stops the services"]
pub struct Services<'lab> {
    running: Vec<Running>,
    _lab: PhantomData<&'lab Lab>,
}

struct Running {
    what: String,
    child: Child,
    log: PathBuf,
    ns: String,
    /// Until it has answered once.
    probe: Option<Probe>,
}

/// Whether a service answers, given how long one attempt may take.
type Probe = Box<dyn Fn(Duration) -> std::io::Result<()> + Send + Sync>;

impl Services<'_> {
    fn new() -> Self {
        Services {
            running: Vec::new(),
            _lab: PhantomData,
        }
    }

    /// Pids of the server processes (one a program started).
    pub fn pids(&self) -> Vec<u32> {
        self.running.iter().map(|r| r.child.id()).collect()
    }

    /// Stops them now (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(mut self) -> Result<()> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<()> {
        let children = self.running.iter_mut().map(|r| &mut r.child).collect();
        let statuses = process::terminate(children);
        self.running.clear();
        for status in statuses {
            status.context("cannot stop a lab service")?;
        }
        Ok(())
    }

    /// Starts `program` in `ns`, its output into `log`; `probe` (run in
    /// `ns`, given how long one attempt may wait) tells when it is ready.
    fn start(
        &mut self,
        what: String,
        ns: &str,
        log: PathBuf,
        args: &[String],
        program: &str,
        probe: Probe,
    ) -> Result<()> {
        let out =
            fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = netns::command(ns, program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {program} in {ns}"))?;
        self.running.push(Running {
            what,
            child,
            log,
            ns: ns.to_owned(),
            probe: Some(probe),
        });
        Ok(())
    }

    /// Polls the probe of each process not known ready yet until it
    /// succeeds (all were started before: their start-ups overlap); fails
    /// early with the server's own words if one exits.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for running in &mut self.running {
            let Some(probe) = running.probe.take() else {
                continue;
            };
            // Short first attempts (a datagram to a socket not bound yet
            // gets no answer, only the wait), longer ones on a slow machine.
            let mut attempt = Duration::from_millis(10);
            loop {
                if let Some(status) = running.child.try_wait()? {
                    let log = fs::read_to_string(&running.log).unwrap_or_default();
                    bail!("{} exited ({status}): {}", running.what, log.trim());
                }
                let last = match netns::run_in(&running.ns, || probe(attempt)) {
                    Ok(()) => break,
                    Err(e) => e,
                };
                if Instant::now() > deadline {
                    bail!("{} is not ready in time: {last}", running.what);
                }
                attempt = (attempt * 2).min(Duration::from_millis(200));
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }
}

impl Drop for Services<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.stop_all() {
            let _ = writeln_stderr(&format!("warning: lab: {e:#}"));
        }
    }
}

fn writeln_stderr(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{line}")
}

/// Every address of `host`: eth0's, and the VIPs where it has them on `lo`.
fn addresses(host: Host) -> Vec<IpAddr> {
    let mut addrs = vec![IpAddr::V4(host.ip()), IpAddr::V6(host.ip6())];
    if host.has_vip_on_lo() {
        addrs.extend([IpAddr::V4(VIP), IpAddr::V6(VIP6)]);
    }
    addrs
}

impl Lab {
    /// Starts dnsmasq on `ok` and `novip` ([`DNS_PORT`], UDP and TCP, on
    /// each of their addresses); returns once each answers a query on every
    /// address.
    pub fn start_dns(&self) -> Result<Services<'_>> {
        let mut services = Services::new();
        self.spawn_dns(&mut services)?;
        services.wait_ready()?;
        Ok(services)
    }

    /// Starts exim on `ok` and `novip` ([`SMTP_PORT`] and
    /// [`SMTP_MULTILINE_PORT`] on every address); returns once both greet.
    pub fn start_smtp(&self) -> Result<Services<'_>> {
        let mut services = Services::new();
        self.spawn_smtp(&mut services)?;
        services.wait_ready()?;
        Ok(services)
    }

    /// Starts the UDP services of `ok` ([`UDP_ECHO_PORT`] on the VIPs,
    /// [`UDP_WRONG_SOURCE_PORT`] on the wildcard); returns once each echoes.
    pub fn start_udp(&self) -> Result<Services<'_>> {
        let mut services = Services::new();
        self.spawn_udp(&mut services)?;
        services.wait_ready()?;
        Ok(services)
    }

    /// All of [`Lab::start_dns`], [`Lab::start_smtp`] and
    /// [`Lab::start_udp`], under one guard (started together: faster than
    /// one after the other).
    pub fn start_services(&self) -> Result<Services<'_>> {
        let mut services = Services::new();
        self.spawn_dns(&mut services)?;
        self.spawn_smtp(&mut services)?;
        self.spawn_udp(&mut services)?;
        services.wait_ready()?;
        Ok(services)
    }

    fn spawn_dns(&self, services: &mut Services<'_>) -> Result<()> {
        for host in DNS_SMTP_HOSTS {
            let dir = self.service_dir(host)?;
            let listen: Vec<String> = addresses(host).iter().map(IpAddr::to_string).collect();
            services.start(
                format!("dnsmasq on {host}"),
                self.ns(host),
                dir.join("dnsmasq.log"),
                &dnsmasq_args(&listen),
                DNSMASQ,
                Box::new(move |attempt| {
                    for ip in addresses(host) {
                        dns_probe(SocketAddr::new(ip, DNS_PORT), attempt)?;
                    }
                    TcpStream::connect_timeout(
                        &SocketAddr::new(IpAddr::V4(host.ip()), DNS_PORT),
                        attempt,
                    )
                    .map(drop)
                }),
            )?;
        }
        Ok(())
    }

    fn spawn_smtp(&self, services: &mut Services<'_>) -> Result<()> {
        // exim writes its logs and spool as its own user.
        let (uid, gid) = user_ids(EXIM_USER)?;
        for host in DNS_SMTP_HOSTS {
            let dir = self.service_dir(host)?.join("exim");
            let spool = dir.join("spool");
            fs::create_dir_all(&spool)?;
            for d in [&dir, &spool] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))
                    .with_context(|| format!("cannot chown {}", d.display()))?;
            }
            // exim loads a certificate at start even with TLS off, and
            // without one makes a self-signed RSA one (~0.2 s): give it the
            // lab's, as its own user's copy.
            for (from, to) in [(CERT_FILE, "tls.pem"), (KEY_FILE, "tls.key")] {
                let to = dir.join(to);
                fs::copy(self.tls_dir().join(from), &to)
                    .with_context(|| format!("cannot copy {from} to {}", to.display()))?;
                std::os::unix::fs::chown(&to, Some(uid), Some(gid))?;
            }
            let conf = dir.join("exim.conf");
            fs::write(&conf, exim_config(host, &dir))?;
            let greeting = smtp_greeting(host);
            services.start(
                format!("exim on {host}"),
                self.ns(host),
                dir.join("stderr.log"),
                &[
                    "-C".to_owned(),
                    conf.display().to_string(),
                    "-bdf".to_owned(),
                ],
                EXIM,
                Box::new(move |attempt| {
                    for ip in addresses(host) {
                        for port in [SMTP_PORT, SMTP_MULTILINE_PORT] {
                            let read = port == SMTP_PORT;
                            smtp_probe(SocketAddr::new(ip, port), read, &greeting, attempt)?;
                        }
                    }
                    Ok(())
                }),
            )?;
        }
        Ok(())
    }

    fn spawn_udp(&self, services: &mut Services<'_>) -> Result<()> {
        let host = Host::Ok;
        let dir = self.service_dir(host)?;
        let instances = [
            (
                "echo",
                format!("UDP4-RECVFROM:{UDP_ECHO_PORT},bind={VIP},fork"),
                SocketAddr::from((VIP, UDP_ECHO_PORT)),
            ),
            (
                "echo6",
                format!("UDP6-RECVFROM:{UDP_ECHO_PORT},bind=[{VIP6}],fork"),
                SocketAddr::from((VIP6, UDP_ECHO_PORT)),
            ),
            (
                "wrong-source",
                format!("UDP4-RECVFROM:{UDP_WRONG_SOURCE_PORT},fork"),
                SocketAddr::from((VIP, UDP_WRONG_SOURCE_PORT)),
            ),
            (
                "wrong-source6",
                format!("UDP6-RECVFROM:{UDP_WRONG_SOURCE_PORT},ipv6only=1,fork"),
                SocketAddr::from((VIP6, UDP_WRONG_SOURCE_PORT)),
            ),
        ];
        for (name, listen, to) in instances {
            services.start(
                format!("socat {name} on {host}"),
                self.ns(host),
                dir.join(format!("socat-{name}.log")),
                &[listen, "PIPE".to_owned()],
                SOCAT,
                Box::new(move |attempt| {
                    let (reply, _) = udp_exchange(to, b"ready?", attempt)?;
                    if reply != b"ready?" {
                        return Err(std::io::Error::other("wrong echo"));
                    }
                    Ok(())
                }),
            )?;
        }
        Ok(())
    }

    /// Sends `payload` from an unconnected UDP socket in `host`'s namespace
    /// to `to` and returns the first datagram that comes back and its
    /// source address (whatever it is: how a test sees a reply from the
    /// wrong address).
    pub fn udp_exchange(
        &self,
        host: Host,
        to: SocketAddr,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(Vec<u8>, SocketAddr)> {
        netns::run_in(self.ns(host), || udp_exchange(to, payload, timeout))
            .with_context(|| format!("no UDP reply from {to} in {timeout:?} ({host})"))
    }

    /// The directory of `host`'s service files (made if needed).
    fn service_dir(&self, host: Host) -> Result<PathBuf> {
        let dir = self.dir.join(host.name());
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }
}

/// dnsmasq as an authoritative server only: no configuration file, no
/// upstream, no /etc/hosts, no DHCP; bound to each of `listen` (so a query
/// to the VIP is answered from the VIP), in the foreground, logging to
/// stderr.
fn dnsmasq_args(listen: &[String]) -> Vec<String> {
    vec![
        "--keep-in-foreground".to_owned(),
        "--conf-file=/dev/null".to_owned(),
        "--no-resolv".to_owned(),
        "--no-hosts".to_owned(),
        "--no-poll".to_owned(),
        "--bind-interfaces".to_owned(),
        format!("--listen-address={}", listen.join(",")),
        format!("--port={DNS_PORT}"),
        // No pid file; stays root (no user to switch to needed).
        "--pid-file=".to_owned(),
        "--user=root".to_owned(),
        "--group=root".to_owned(),
        "--log-facility=-".to_owned(),
        "--log-queries".to_owned(),
        format!("--host-record={DNS_NAME},{DNS_A},{DNS_AAAA}"),
        // Authoritative on every listening address (without addresses
        // here, queries go the resolver's way and an absent name gets
        // REFUSED for want of an upstream) for two zones: `lab.test`, which
        // holds the host record (a zone `.` alone does not serve it), and
        // the root, so that `. SOA` is NOERROR. Other names of lab.test are
        // NXDOMAIN; names outside it REFUSED.
        format!("--auth-server={DNS_SOA_MNAME},{}", listen.join(",")),
        format!("--auth-zone={DNS_ZONE}"),
        "--auth-zone=.".to_owned(),
        format!("--auth-soa=1,{DNS_SOA_RNAME}"),
    ]
}

/// exim as a receiver that refuses every recipient: no TLS (none offered;
/// the certificate only spares exim making one), no DNS or
/// ident lookups, no queue runs, listening on `[::]` (dual stack: IPv4
/// too, the VIPs included), everything in `dir`.
fn exim_config(host: Host, dir: &Path) -> String {
    let banner_lines: Vec<String> = (1..=SMTP_MULTILINE_LINES)
        .map(|i| format!("{} multi-line banner, line {i}", lab_host_name(host)))
        .collect();
    let template = r"primary_hostname = HOSTNAME
spool_directory = DIR/spool
log_file_path = DIR/%slog
pid_file_path = DIR/exim.pid
daemon_smtp_ports = SMTP_PORT : MULTILINE_PORT
local_interfaces = <; ::
tls_advertise_hosts =
tls_certificate = DIR/tls.pem
tls_privatekey = DIR/tls.key
tls_verify_certificates =
keep_environment =
host_lookup =
rfc1413_hosts =
smtp_banner = ${if eq{$received_port}{MULTILINE_PORT}{MULTILINE}{HOSTNAME GREETING}}
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  deny message = no mail here
";
    template
        .replace("HOSTNAME", &lab_host_name(host))
        .replace("DIR", &dir.display().to_string())
        .replace("MULTILINE_PORT", &SMTP_MULTILINE_PORT.to_string())
        .replace("SMTP_PORT", &SMTP_PORT.to_string())
        .replace("MULTILINE", &banner_lines.join("\\n"))
        .replace("GREETING", SMTP_GREETING)
}

/// Uid and gid of `user`, from /etc/passwd.
fn user_ids(user: &str) -> Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == user).then_some(())?;
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .with_context(|| {
            format!("no user {user}: is exim4-daemon-light installed (cargo xtask setup)?")
        })
}

fn udp_exchange(
    to: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> std::io::Result<(Vec<u8>, SocketAddr)> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send_to(payload, to)?;
    let mut buf = vec![0; 65536];
    let (len, from) = socket.recv_from(&mut buf)?;
    buf.truncate(len);
    Ok((buf, from))
}

/// A UDP query for [`DNS_NAME`] A gets a response with its id.
fn dns_probe(to: SocketAddr, timeout: Duration) -> std::io::Result<()> {
    let query = dns_query(0x4c61, DNS_NAME, 1);
    let (reply, _) = udp_exchange(to, &query, timeout)?;
    if reply.len() < 12 || reply[..2] != query[..2] || reply[2] & 0x80 == 0 {
        return Err(std::io::Error::other("not a DNS response"));
    }
    Ok(())
}

/// A DNS query (RD set) for `name` of type `qtype`, class IN.
fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(u8::try_from(label.len()).expect("short label"));
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Connects to `to`; with `read`, also reads the greeting line and checks
/// it is `greeting`.
fn smtp_probe(
    to: SocketAddr,
    read: bool,
    greeting: &str,
    timeout: Duration,
) -> std::io::Result<()> {
    let stream = TcpStream::connect_timeout(&to, timeout)?;
    if !read {
        return Ok(());
    }
    stream.set_read_timeout(Some(timeout.max(Duration::from_millis(100))))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    if line.trim_end() != greeting {
        return Err(std::io::Error::other(format!("greeting {line:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_query_encodes_name_and_type() {
        let q = dns_query(0x1234, "www.lab.test", 1);
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03www\x03lab\x04test\x00\x00\x01\x00\x01");
        assert_eq!(&dns_query(1, ".", 6)[12..], b"\x00\x00\x06\x00\x01");
    }

    #[test]
    fn exim_config_has_both_banners() {
        let conf = exim_config(Host::Ok, Path::new("/tmp/x"));
        assert!(conf.contains(
            "smtp_banner = ${if eq{$received_port}{2525}{ok.lab.test multi-line banner, line 1\\n"
        ));
        assert!(conf.contains("{ok.lab.test ESMTP vipcheck lab}}\n"));
        assert!(conf.contains("daemon_smtp_ports = 25 : 2525\n"));
        assert!(conf.contains("spool_directory = /tmp/x/spool\n"));
    }
}
