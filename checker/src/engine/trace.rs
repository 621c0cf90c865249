//! What a check shows of its frames: one line per frame on stderr (as
//! [`wire::describe`](crate::wire::describe) writes it), and a pcap file
//! (`--pcap`) of every frame sent and received.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use crate::error::{Error, Result};
use crate::probe::Trace;

/// Shows the frames of one check: lines on stderr as [`Trace`] asks, and
/// every frame in the pcap file when there is one.
#[derive(Default)]
pub(crate) struct Tracer {
    trace: Trace,
    pcap: Option<PcapWriter<BufWriter<Box<dyn Write + Send>>>>,
}

/// Whether `--pcap` writes to stdout (`--pcap -`).
pub(crate) fn pcap_to_stdout(pcap: Option<&Path>) -> bool {
    pcap.is_some_and(|p| p == Path::new("-"))
}

/// Large enough for the GRO super-frames XDP hands over (64 KiB and more).
const PCAP_SNAPLEN: u32 = 262_144;

impl Tracer {
    /// `pcap`: the file to write every frame to (created or truncated);
    /// `-` is stdout (the verdict then goes to stderr: [`pcap_to_stdout`]).
    pub(crate) fn new(trace: Trace, pcap: Option<&Path>) -> Result<Tracer> {
        let pcap = match pcap {
            None => None,
            Some(path) => {
                let file: Box<dyn Write + Send> = if pcap_to_stdout(Some(path)) {
                    Box::new(std::io::stdout())
                } else {
                    Box::new(
                        File::create(path)
                            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?,
                    )
                };
                let header = PcapHeader {
                    snaplen: PCAP_SNAPLEN,
                    ..PcapHeader::default()
                };
                Some(
                    PcapWriter::with_header(BufWriter::new(file), header).map_err(|e| {
                        Error::io(
                            format!("writing {}", path.display()),
                            std::io::Error::other(e),
                        )
                    })?,
                )
            }
        };
        Ok(Tracer { trace, pcap })
    }

    pub(crate) fn sent(&mut self, frame: &[u8]) {
        self.frame('>', frame);
    }

    pub(crate) fn received(&mut self, frame: &[u8]) {
        self.frame('<', frame);
    }

    fn frame(&mut self, direction: char, frame: &[u8]) {
        if let Some(pcap) = &mut self.pcap {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let len = frame.len().min(PCAP_SNAPLEN as usize);
            // A full disk must not fail the check: the capture is a witness.
            let _ = pcap.write_packet(&PcapPacket::new(now, frame.len() as u32, &frame[..len]));
        }
        let shown = if crate::wire::segment::Segment::parse(frame).is_some() {
            self.trace.tcp
        } else {
            // ARP and neighbour discovery.
            self.trace.arp
        };
        if shown {
            let line = crate::wire::describe::describe_as(frame, self.trace.c_format);
            if self.trace.c_format {
                crate::note!("{line}");
            } else {
                crate::note!("{direction} {line}");
            }
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(pcap) = self.pcap.take() {
            let _ = pcap.into_writer().flush();
        }
    }
}
