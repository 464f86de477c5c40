//! A lean HTTP/1.1 reader for the `stream_fanout` clients: one TCP connection, one
//! 64 KiB read buffer, the chunked transfer coding decoded in place.
//!
//! The harness's clients share the machine with the server, so every cycle they
//! spend is one the server lacks. A `reqwest` client per stream (a hyper connection
//! task, a body channel and a `Bytes` per chunk) took 80–86 % of a core for 1,000
//! clients at 1,000 events/s; this reader does only what a stream needs: send one
//! GET, check the status, and hand the body's bytes to the SSE parser.

use anyhow::{Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUF: usize = 64 * 1024;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// An open event stream.
pub struct SseConnection {
    io: TcpStream,
    buf: Box<[u8]>,
    /// Body bytes read together with the response head, not yet handed out.
    pending: std::ops::Range<usize>,
    body: Body,
}

enum Body {
    Chunked(Dechunk),
    /// Until the server closes the connection.
    Raw,
}

impl SseConnection {
    /// Sends `GET <path>` to `base` (`http://host:port`) with the bearer key and waits
    /// for a 200 answer's head.
    pub async fn open(base: &str, path: &str, key: &str) -> Result<Self> {
        let host = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("{base}: only http:// is supported"))?;
        let mut io = TcpStream::connect(host).await?;
        io.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {key}\r\n\
             accept: text/event-stream\r\n\r\n"
        );
        io.write_all(request.as_bytes()).await?;
        let mut buf = vec![0u8; BUF].into_boxed_slice();
        let mut filled = 0;
        let head_end = loop {
            if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if filled >= MAX_HEAD {
                bail!("response head longer than {MAX_HEAD} bytes");
            }
            let n = io.read(&mut buf[filled..]).await?;
            if n == 0 {
                bail!("the server closed the connection before answering");
            }
            filled += n;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status = head.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            let rest = String::from_utf8_lossy(&buf[head_end..filled]);
            bail!("{}{rest}", head.lines().next().unwrap_or_default());
        }
        let body = if head.contains("\r\ntransfer-encoding: chunked") {
            Body::Chunked(Dechunk::default())
        } else {
            Body::Raw
        };
        Ok(Self {
            io,
            buf,
            pending: head_end..filled,
            body,
        })
    }

    /// Reads what the server sent next and hands the body bytes to `out`; `false`
    /// once the stream has ended.
    pub async fn next(&mut self, out: &mut impl FnMut(&[u8])) -> Result<bool> {
        let range = if self.pending.is_empty() {
            let n = self.io.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(false);
            }
            0..n
        } else {
            std::mem::replace(&mut self.pending, 0..0)
        };
        let bytes = &self.buf[range];
        match &mut self.body {
            Body::Raw => {
                out(bytes);
                Ok(true)
            }
            Body::Chunked(d) => Ok(!d.feed(bytes, out)?),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Done,
}

/// Decodes the chunked transfer coding incrementally; input may split anywhere.
#[derive(Debug, Default)]
pub struct Dechunk {
    state: State,
    size: u64,
}

impl Dechunk {
    /// Feeds bytes; `out` gets the data. Returns true after the last (empty) chunk.
    pub fn feed(&mut self, mut b: &[u8], out: &mut impl FnMut(&[u8])) -> Result<bool> {
        while let Some(&c) = b.first() {
            match self.state {
                State::Size => {
                    b = &b[1..];
                    match c {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let digit = u64::from((c as char).to_digit(16).unwrap_or(0));
                            self.size = self
                                .size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(digit))
                                .ok_or_else(|| anyhow!("chunk size overflows"))?;
                        }
                        b';' => self.state = State::Extension,
                        b'\r' => self.state = State::SizeLf,
                        _ => bail!("bad chunk size byte {c:#04x}"),
                    }
                }
                State::Extension => {
                    b = &b[1..];
                    if c == b'\r' {
                        self.state = State::SizeLf;
                    }
                }
                State::SizeLf => {
                    b = &b[1..];
                    if c != b'\n' {
                        bail!("chunk size line not ended by CRLF");
                    }
                    if self.size == 0 {
                        self.state = State::Done;
                        return Ok(true);
                    }
                    self.state = State::Data;
                }
                State::Data => {
                    let n = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(b.len());
                    out(&b[..n]);
                    b = &b[n..];
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr | State::DataLf => {
                    b = &b[1..];
                    let want = if self.state == State::DataCr {
                        b'\r'
                    } else {
                        b'\n'
                    };
                    if c != want {
                        bail!("chunk data not followed by CRLF");
                    }
                    self.state = if self.state == State::DataCr {
                        State::DataLf
                    } else {
                        State::Size
                    };
                }
                State::Done => return Ok(true),
            }
        }
        Ok(self.state == State::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";

    #[test]
    fn decodes_chunks_split_anywhere() {
        for cut in 0..=BODY.len() {
            let mut d = Dechunk::default();
            let mut data = Vec::new();
            let first = d
                .feed(&BODY[..cut], &mut |b| data.extend_from_slice(b))
                .unwrap();
            let done = d
                .feed(&BODY[cut..], &mut |b| data.extend_from_slice(b))
                .unwrap();
            assert!(done || first, "cut at {cut}");
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "cut at {cut}");
        }
    }

    #[test]
    fn decodes_byte_by_byte() {
        let mut d = Dechunk::default();
        let mut data = Vec::new();
        let mut done = false;
        for b in BODY {
            done = d
                .feed(std::slice::from_ref(b), &mut |x| data.extend_from_slice(x))
                .unwrap();
        }
        assert!(done);
        assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn rejects_garbage() {
        let mut d = Dechunk::default();
        assert!(d.feed(b"zz\r\n", &mut |_| {}).is_err());
        let mut d = Dechunk::default();
        assert!(d.feed(b"2\r\nabX", &mut |_| {}).is_err());
    }
}
