//! The byte stream under the frames of a connection: plain TCP, or TLS over TCP (feature
//! `tls`, when [`crate::TcpConfig::tls`] is set).
//!
//! Under TLS a TCP FIN that arrives without a TLS `close_notify` — what a peer's kernel sends
//! when the process is killed, `kill -9` included — reads as the end of the stream, exactly as
//! the same FIN reads over plain TCP (rustls itself reports it as `UnexpectedEof`). So the
//! proof of death sees the same [`baton_core::CloseKind`] in both modes: `Orderly` for a FIN at
//! a frame boundary, `Abrupt` for a reset, an error or a FIN in the middle of a frame. The
//! truncation protection `close_notify` gives is not needed: every frame carries its length.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection's stream.
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, as the dialer.
    #[cfg(feature = "tls")]
    TlsClient(Box<tokio_rustls::client::TlsStream<Sniffed>>),
    /// TLS, as the listener.
    #[cfg(feature = "tls")]
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket, when the stream is plain TCP (unauthenticated notices are written on
    /// it directly).
    pub(crate) fn plain(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            #[cfg(feature = "tls")]
            _ => None,
        }
    }
}

/// What every variant of [`Stream`] is underneath: a byte stream tokio can poll.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

impl Stream {
    /// The variant's stream, whichever it is: the one place that lists the variants for IO.
    fn io(&mut self) -> &mut dyn Io {
        match self {
            Stream::Plain(s) => s,
            #[cfg(feature = "tls")]
            Stream::TlsClient(s) => s.as_mut(),
            #[cfg(feature = "tls")]
            Stream::TlsServer(s) => s.as_mut(),
        }
    }
}

/// A TLS read that met the TCP end of the stream without `close_notify`: an end of stream,
/// as over plain TCP (see the module docs).
fn fin_is_eof(read: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
    match read {
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
        other => other,
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let tls = !matches!(this, Stream::Plain(_));
        let read = Pin::new(this.io()).poll_read(cx, buf);
        if tls { fin_is_eof(read) } else { read }
    }
}

/// Implements `AsyncWrite` for `$ty` by handing every call to the writer that `$inner`
/// borrows from `$this` (a `&mut` of the value). A macro: a function cannot write an impl.
macro_rules! forward_write {
    ($ty:ty, |$this:ident| $inner:expr) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $this = self.get_mut();
                Pin::new($inner).poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $this = self.get_mut();
                Pin::new($inner).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $this = self.get_mut();
                Pin::new($inner).poll_shutdown(cx)
            }
        }
    };
}

forward_write!(Stream, |this| this.io());

/// Whether the first bytes a listener sees are a TLS `ClientHello` (a handshake record,
/// major version 3). A baton `Hello` starts with its 4-byte length, whose first byte is 0 for
/// any frame under 16 MiB, so the two never meet.
pub(crate) fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, ..] | [0x16])
}

/// A dialer's TCP stream under TLS that keeps the first bytes it read, so that when the TLS
/// handshake fails on a plain-text notice from the listener (busy, or TLS not in use there)
/// the dialer can still tell the true reason.
#[cfg(feature = "tls")]
pub(crate) struct Sniffed {
    tcp: TcpStream,
    first: [u8; 9],
    seen: usize,
}

#[cfg(feature = "tls")]
impl Sniffed {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Sniffed {
            tcp,
            first: [0; 9],
            seen: 0,
        }
    }

    /// The notice frame the listener sent in plain text, if the first bytes read were one
    /// (length 5, then the notice).
    pub(crate) fn notice(&self) -> Option<[u8; 5]> {
        match self.first {
            [0, 0, 0, 5, a, b, c, d, e] if self.seen == 9 => Some([a, b, c, d, e]),
            _ => None,
        }
    }
}

#[cfg(feature = "tls")]
impl AsyncRead for Sniffed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if this.seen < this.first.len() {
            let new = &buf.filled()[before..];
            let n = new.len().min(this.first.len() - this.seen);
            this.first[this.seen..this.seen + n].copy_from_slice(&new[..n]);
            this.seen += n;
        }
        read
    }
}

#[cfg(feature = "tls")]
forward_write!(Sniffed, |this| &mut this.tcp);

/// The TLS failure behind an IO error, described for a log line, if there is one: a
/// certificate the peer did not accept (an alert from it) or that we did not.
pub(crate) fn tls_failure(e: &io::Error) -> Option<String> {
    tls_failure_kind(e).map(|(_, why)| why)
}

/// [`tls_failure`] with the failure's kind, for rate-limiting its log line.
pub(crate) fn tls_failure_kind(e: &io::Error) -> Option<(&'static str, String)> {
    #[cfg(feature = "tls")]
    {
        crate::tls::describe(e)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = e;
        None
    }
}
