//! Framing and message encoding: length-delimited frames carrying postcard payloads.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload
//! ([`LengthDelimitedCodec`] defaults). A declared length above the configured maximum is an
//! error before any payload byte is buffered, so a hostile length header cannot make the reader
//! allocate.

use baton_core::Message;
use tokio_util::codec::LengthDelimitedCodec;

/// The default (and recommended) largest frame payload: 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

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
        let mut buf = BytesMut::from(&[0x00, 0x10, 0x00, 0x00][..]);
        assert!(codec(DEFAULT_MAX_FRAME).decode(&mut buf).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut payload = encode_message(&Message::Leave, DEFAULT_MAX_FRAME).unwrap();
        payload.push(1);
        assert_eq!(decode_message(&payload), Err(WireError::Trailing(1)));
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
