//! Framing and message encoding: length-delimited frames carrying postcard payloads.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload
//! ([`LengthDelimitedCodec`] defaults). A declared length above the configured maximum is an
//! error before any payload byte is buffered, so a hostile length header cannot make the reader
//! allocate.
//!
//! # Authenticated frames
//!
//! Every frame after the handshake is *sealed* ([`FrameSealer`]) under the key of its direction
//! ([`crate::handshake::SessionKeys`], derived in the handshake from the secret and both
//! nonces):
//!
//! ```text
//! seq: u64 big-endian (0, 1, 2, … per direction of a connection)
//! message: postcard bytes of one baton_core::Message
//! tag: first 16 bytes of HMAC-SHA256(key, seq | message)
//! ```
//!
//! The receiver ([`FrameOpener`]) checks the tag first (in constant time): a frame altered or
//! injected in flight fails it. It then checks the sequence number against a 64-frame window,
//! as IPsec's anti-replay window does (RFC 4303 §3.4.3): a number seen before, or older than
//! the window, is a replayed frame; a frame that leaves the window unseen is a removed one.
//! Frames reordered within the window are accepted (TCP never reorders; the test proxy does).
//! Any failure closes the connection, with a log line saying which. Frames are authenticated,
//! not encrypted.

use baton_core::Message;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::codec::LengthDelimitedCodec;

/// Bytes of a sealed frame's sequence number.
pub const SEQ_LEN: usize = 8;
/// Bytes of a sealed frame's tag (HMAC-SHA256 truncated, as RFC 4868 does).
pub const TAG_LEN: usize = 16;
/// What sealing adds to a message's bytes.
pub const SEAL_OVERHEAD: usize = SEQ_LEN + TAG_LEN;
/// Frames a receiver accepts out of order (see the module docs).
pub const REPLAY_WINDOW: u64 = 64;

/// Why a sealed frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Too short to hold a sequence number and a tag.
    #[error(
        "frame authentication failed: modified or injected frame ({0} bytes: too short to be sealed)"
    )]
    Short(usize),
    /// The tag does not verify.
    #[error(
        "frame authentication failed: modified or injected frame (bad MAC, sequence number {seq})"
    )]
    BadTag {
        /// The sequence number it claims.
        seq: u64,
    },
    /// The frame was received before, or is older than the window.
    #[error("frame authentication failed: replayed frame (sequence number {seq}, next {next})")]
    Replayed {
        /// Its sequence number.
        seq: u64,
        /// The next new sequence number.
        next: u64,
    },
    /// A frame left the window without having arrived: it was removed in flight.
    #[error("frame authentication failed: frame {missing} removed in flight (now at {seq})")]
    Missing {
        /// The first missing sequence number.
        missing: u64,
        /// The sequence number that revealed it.
        seq: u64,
    },
}

fn keyed(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail; the fallback keeps the function total.
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()))
}

/// Seals the frames of one direction of a connection.
#[derive(Clone)]
pub struct FrameSealer {
    mac: Hmac<Sha256>,
    next: u64,
}

debug_showing!(FrameSealer { next });

impl FrameSealer {
    /// A sealer under `key` (the sender's [`crate::handshake::SessionKeys::send`]).
    pub fn new(key: &[u8; 32]) -> Self {
        FrameSealer {
            mac: keyed(key),
            next: 0,
        }
    }

    /// `seq | message | tag` for the next sequence number.
    pub fn seal(&mut self, message: &[u8]) -> Vec<u8> {
        let seq = self.next;
        self.next += 1;
        let mut out = Vec::with_capacity(message.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(message);
        let mut mac = self.mac.clone();
        mac.update(&out);
        let tag = mac.finalize().into_bytes();
        out.extend_from_slice(&tag[..TAG_LEN]);
        out
    }
}

/// Opens the frames of one direction of a connection.
#[derive(Clone)]
pub struct FrameOpener {
    mac: Hmac<Sha256>,
    /// One above the highest sequence number accepted.
    top: u64,
    /// Bit `i`: sequence number `top - 1 - i` arrived (set for numbers below 0).
    seen: u64,
}

debug_showing!(FrameOpener { top });

impl FrameOpener {
    /// An opener under `key` (the receiver's [`crate::handshake::SessionKeys::recv`]).
    pub fn new(key: &[u8; 32]) -> Self {
        FrameOpener {
            mac: keyed(key),
            top: 0,
            seen: u64::MAX,
        }
    }

    /// Checks a sealed frame; returns its message bytes.
    pub fn open<'a>(&mut self, frame: &'a [u8]) -> Result<&'a [u8], FrameError> {
        if frame.len() < SEAL_OVERHEAD {
            return Err(FrameError::Short(frame.len()));
        }
        let (body, tag) = frame.split_at(frame.len() - TAG_LEN);
        let mut seq = [0u8; SEQ_LEN];
        seq.copy_from_slice(&body[..SEQ_LEN]);
        let seq = u64::from_be_bytes(seq);
        let mut mac = self.mac.clone();
        mac.update(body);
        if mac.verify_truncated_left(tag).is_err() {
            return Err(FrameError::BadTag { seq });
        }
        if seq >= self.top {
            let shift = seq - self.top + 1;
            if shift > REPLAY_WINDOW {
                return Err(FrameError::Missing {
                    missing: self.first_unseen(self.top),
                    seq,
                });
            }
            // The `shift` oldest bits leave the window: each must have arrived.
            let leaving = if shift == 64 {
                self.seen
            } else {
                self.seen >> (64 - shift)
            };
            let all = if shift == 64 {
                u64::MAX
            } else {
                (1u64 << shift) - 1
            };
            if leaving != all {
                return Err(FrameError::Missing {
                    missing: self.first_unseen(self.top),
                    seq,
                });
            }
            self.seen = if shift == 64 { 0 } else { self.seen << shift } | 1;
            self.top = seq + 1;
        } else {
            let offset = self.top - 1 - seq;
            if offset >= REPLAY_WINDOW || self.seen & (1 << offset) != 0 {
                return Err(FrameError::Replayed {
                    seq,
                    next: self.top,
                });
            }
            self.seen |= 1 << offset;
        }
        Ok(&body[SEQ_LEN..])
    }

    /// The oldest sequence number in the window that has not arrived (`fallback` if none).
    fn first_unseen(&self, fallback: u64) -> u64 {
        (0..REPLAY_WINDOW)
            .rev()
            .find(|i| self.seen & (1 << i) == 0)
            .and_then(|i| self.top.checked_sub(1 + i))
            .unwrap_or(fallback)
    }
}

/// Encodes `message` and seals it: a frame of at most `max_frame` bytes.
pub fn seal_message(
    sealer: &mut FrameSealer,
    message: &Message,
    max_frame: usize,
) -> Result<Vec<u8>, WireError> {
    let bytes = encode_message(message, max_frame.saturating_sub(SEAL_OVERHEAD))?;
    Ok(sealer.seal(&bytes))
}

/// Opens a sealed frame and decodes its [`Message`].
pub fn open_message(opener: &mut FrameOpener, frame: &[u8]) -> Result<Message, WireError> {
    let bytes = opener.open(frame).map_err(WireError::Frame)?;
    decode_message(bytes)
}

/// The default largest frame payload once a connection is authenticated: 4 MiB. A node's
/// state with thousands of groups, or a status snapshot of a large cluster, is larger than
/// the 64 KiB that once was the only limit.
pub const DEFAULT_MAX_FRAME: usize = 4 << 20;

/// The largest frame payload before the handshake has authenticated the other side (and the
/// most any frame may be when `max_frame` is smaller): an unauthenticated dialer cannot make a
/// node buffer more than this per connection.
pub const HANDSHAKE_MAX_FRAME: usize = 64 * 1024;

/// The codec of a connection still in its handshake: [`HANDSHAKE_MAX_FRAME`] at most. Call
/// [`authenticated`] once the handshake is done.
pub fn handshake_codec(max_frame: usize) -> LengthDelimitedCodec {
    codec(max_frame.min(HANDSHAKE_MAX_FRAME))
}

/// Lifts a connection's frame limit to `max_frame` once its handshake authenticated the peer.
pub fn authenticated<T>(
    framed: &mut tokio_util::codec::Framed<T, LengthDelimitedCodec>,
    max_frame: usize,
) {
    framed.codec_mut().set_max_frame_length(max_frame);
}

/// The frame codec used on every connection, refusing payloads above `max_frame` bytes.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max_frame)
        .new_codec()
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The payload is not a postcard [`Message`].
    #[error("undecodable message: {0}")]
    Decode(String),
    /// The payload decoded but left bytes over.
    #[error("undecodable message: {0} trailing bytes")]
    Trailing(usize),
    /// The message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A sealed frame did not open (see [`FrameError`]).
    #[error("{0}")]
    Frame(FrameError),
    /// The encoded message exceeds the frame limit.
    #[error("message of {len} bytes exceeds the {max}-byte frame limit")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Decodes one frame payload as a [`Message`]; the whole payload must be consumed.
pub fn decode_message(payload: &[u8]) -> Result<Message, WireError> {
    match postcard::take_from_bytes::<Message>(payload) {
        Ok((message, [])) => Ok(message),
        Ok((_, rest)) => Err(WireError::Trailing(rest.len())),
        Err(e) => Err(WireError::Decode(e.to_string())),
    }
}

/// Encodes `message` as a frame payload of at most `max_frame` bytes.
pub fn encode_message(message: &Message, max_frame: usize) -> Result<Vec<u8>, WireError> {
    let bytes = postcard::to_allocvec(message).map_err(|e| WireError::Encode(e.to_string()))?;
    if bytes.len() > max_frame {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: max_frame,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn round_trip_through_the_codec() {
        let payload = encode_message(&Message::Leave, DEFAULT_MAX_FRAME).unwrap();
        let mut buf = BytesMut::new();
        codec(DEFAULT_MAX_FRAME)
            .encode(bytes::Bytes::from(payload), &mut buf)
            .unwrap();
        let frame = codec(DEFAULT_MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        assert_eq!(decode_message(&frame).unwrap(), Message::Leave);
    }

    #[test]
    fn oversized_length_header_is_an_error() {
        // 16 MiB, above the 4 MiB limit.
        let mut buf = BytesMut::from(&[0x01, 0x00, 0x00, 0x00][..]);
        assert!(codec(DEFAULT_MAX_FRAME).decode(&mut buf).is_err());
    }

    #[test]
    fn before_the_handshake_a_frame_above_64_kib_is_an_error() {
        // 1 MiB: fine once authenticated, refused before.
        let header = [0x00, 0x10, 0x00, 0x00];
        assert!(
            handshake_codec(DEFAULT_MAX_FRAME)
                .decode(&mut BytesMut::from(&header[..]))
                .is_err()
        );
        assert!(
            codec(DEFAULT_MAX_FRAME)
                .decode(&mut BytesMut::from(&header[..]))
                .is_ok()
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut payload = encode_message(&Message::Leave, DEFAULT_MAX_FRAME).unwrap();
        payload.push(1);
        assert_eq!(decode_message(&payload), Err(WireError::Trailing(1)));
    }

    fn pair() -> (FrameSealer, FrameOpener) {
        (FrameSealer::new(&[7; 32]), FrameOpener::new(&[7; 32]))
    }

    #[test]
    fn sealed_frames_open_in_order_and_reordered_within_the_window() {
        let (mut s, mut o) = pair();
        let frames: Vec<Vec<u8>> = (0..200u32).map(|i| s.seal(&i.to_be_bytes())).collect();
        for (i, f) in frames.iter().enumerate().take(10) {
            assert_eq!(o.open(f).unwrap(), (i as u32).to_be_bytes());
        }
        // 10..20 arrive backwards: accepted once each.
        for f in frames[10..20].iter().rev() {
            assert!(o.open(f).is_ok());
        }
        assert!(matches!(
            o.open(&frames[15]),
            Err(FrameError::Replayed { seq: 15, .. })
        ));
        assert!(matches!(
            o.open(&frames[3]),
            Err(FrameError::Replayed { seq: 3, .. })
        ));
        for f in &frames[20..150] {
            assert!(o.open(f).is_ok());
        }
        // Older than the window.
        assert!(matches!(
            o.open(&frames[20]),
            Err(FrameError::Replayed { .. })
        ));
    }

    #[test]
    fn altered_injected_and_removed_frames_are_refused() {
        let (mut s, mut o) = pair();
        let f0 = s.seal(b"hello");
        for i in 0..f0.len() {
            let mut bad = f0.clone();
            bad[i] ^= 0x20;
            let mut o2 = o.clone();
            let err = o2.open(&bad).unwrap_err();
            assert!(matches!(err, FrameError::BadTag { .. }), "{i}: {err}");
            assert!(err.to_string().contains("modified or injected"), "{err}");
        }
        // Another key (another connection or direction) does not open it.
        assert!(matches!(
            FrameOpener::new(&[8; 32]).open(&f0),
            Err(FrameError::BadTag { .. })
        ));
        assert!(matches!(o.open(&f0[..10]), Err(FrameError::Short(10))));
        assert!(o.open(&f0).is_ok());
        // Frame 1 removed; 2..=64 still fit the window, 65 pushes 1 out unseen.
        let _lost = s.seal(b"lost");
        for i in 2..=64u32 {
            assert!(o.open(&s.seal(&i.to_be_bytes())).is_ok(), "{i}");
        }
        let err = o.open(&s.seal(b"65")).unwrap_err();
        assert_eq!(
            err,
            FrameError::Missing {
                missing: 1,
                seq: 65
            }
        );
        // A jump beyond the window at once.
        let (mut s, mut o) = pair();
        let frames: Vec<Vec<u8>> = (0..100u32).map(|i| s.seal(&i.to_be_bytes())).collect();
        assert!(o.open(&frames[0]).is_ok());
        assert!(matches!(
            o.open(&frames[90]),
            Err(FrameError::Missing { .. })
        ));
    }

    #[test]
    fn too_large_messages_are_not_encoded() {
        let m = Message::Request(baton_core::message::Request {
            id: 1,
            group: "g".into(),
            any: false,
            payload: vec![0; 100],
        });
        assert!(matches!(
            encode_message(&m, 50),
            Err(WireError::TooLarge { max: 50, .. })
        ));
    }
}
