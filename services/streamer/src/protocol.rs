//! The two protocols spoken on the `filePathChannel` data channel (see `docs/protocol.md`).
//!
//! - The original's, kept byte-compatible: `{"type":"hijackReq","ts":<url>,"id":<string>}` is
//!   answered with the file cut into slices of exactly 16384 bytes, each as
//!   `{"type":"hijackRespText"|"hijackRespData","id","sliceNum","totalSliceNum","totalLength",
//!   "payload":<base64>}` sent as a BINARY message, or `{"type":"hijackError","id","error"}`.
//! - The binary fast path: `{"type":"get","id":<u32>,"path":<url>,"offset"?,"length"?}` and
//!   `{"type":"cancel","id":<u32>}`, answered with frames `[kind u8][id u32 BE][payload]`.

use bytes::{BufMut, Bytes, BytesMut};
use data_encoding::BASE64;
use serde::Deserialize;

/// Slice size of the original protocol (its client places slice i at i × 16384).
pub const SLICE: usize = 16384;
/// Payload bytes per binary DATA frame when the peer's maximum message size is unknown (a
/// frame stays under 64 KiB, which every peer accepts).
pub const CHUNK: usize = 60 * 1024;
/// Largest DATA payload used: frames stay under the 256 KiB that Chromium and webrtc-rs allow.
pub const MAX_CHUNK: usize = 240 * 1024;

/// DATA payload size for a channel whose negotiated maximum message size is `max_message`.
pub fn chunk_for(max_message: usize) -> usize {
    max_message.saturating_sub(64).clamp(16 * 1024, MAX_CHUNK)
}
/// Largest request message accepted.
pub const MAX_REQUEST: usize = 4096;

/// Binary frame kinds.
pub mod kind {
    /// Payload: total size u64, offset u64, length u64 (BE), then the content type (UTF-8).
    pub const START: u8 = 1;
    /// Payload: the next bytes of the range.
    pub const DATA: u8 = 2;
    /// No payload: the range is complete.
    pub const END: u8 = 3;
    /// Payload: status u16 (BE; HTTP-like: 400, 404, 413, 429, 500), then a UTF-8 message.
    pub const ERROR: u8 = 4;
}

/// A request from the browser.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The original protocol.
    Hijack {
        id: String,
        url: String,
    },
    /// The binary protocol.
    Get {
        id: u32,
        url: String,
        offset: u64,
        length: Option<u64>,
    },
    Cancel {
        id: u32,
    },
}

/// Why a data-channel message is not a request; the channel answers it with status 413
/// (too large) or 400, in the protocol the message seems to speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request of {0} bytes is over the {MAX_REQUEST}-byte limit")]
    TooLarge(usize),
    #[error("malformed request: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Wire {
    #[serde(rename = "hijackReq")]
    Hijack { id: serde_json::Value, ts: String },
    #[serde(rename = "get")]
    Get {
        id: u32,
        path: String,
        #[serde(default)]
        offset: u64,
        length: Option<u64>,
    },
    #[serde(rename = "cancel")]
    Cancel { id: u32 },
}

impl Request {
    /// Parses one data-channel message (text or binary: the original client sends text).
    /// The original's id is echoed as given (a string, or a number as its text).
    pub fn parse(msg: &[u8]) -> Result<Self, RequestError> {
        if msg.len() > MAX_REQUEST {
            return Err(RequestError::TooLarge(msg.len()));
        }
        let wire: Wire =
            serde_json::from_slice(msg).map_err(|e| RequestError::Malformed(e.to_string()))?;
        Ok(match wire {
            Wire::Hijack { id, ts } => Request::Hijack {
                id: match id {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                },
                url: ts,
            },
            Wire::Get {
                id,
                path,
                offset,
                length,
            } => Request::Get {
                id,
                url: path,
                offset,
                length,
            },
            Wire::Cancel { id } => Request::Cancel { id },
        })
    }

    /// The id to answer an error with, if the message had one we could read.
    pub fn id_of_malformed(msg: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(msg).ok()?;
        match v.get("id")? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// Number of slices the original protocol sends for `len` bytes (an empty file is one slice).
pub fn slice_count(len: u64) -> u64 {
    len.div_ceil(SLICE as u64).max(1)
}

/// One slice of the original protocol, as the JSON bytes to send in a binary message.
pub fn hijack_slice(
    id: &str,
    text: bool,
    slice: u64,
    total_slices: u64,
    total_len: u64,
    data: &[u8],
) -> Bytes {
    #[derive(serde::Serialize)]
    struct Slice<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: &'a str,
        #[serde(rename = "sliceNum")]
        slice: u64,
        #[serde(rename = "totalSliceNum")]
        total_slices: u64,
        #[serde(rename = "totalLength")]
        total_len: u64,
        payload: String,
    }
    let s = Slice {
        kind: if text {
            "hijackRespText"
        } else {
            "hijackRespData"
        },
        id,
        slice,
        total_slices,
        total_len,
        payload: BASE64.encode(data),
    };
    Bytes::from(serde_json::to_vec(&s).unwrap_or_default())
}

/// The original protocol's error message (also sent as a binary message).
pub fn hijack_error(id: &str, error: &str) -> Bytes {
    let v = serde_json::json!({ "type": "hijackError", "id": id, "error": error });
    Bytes::from(v.to_string())
}

fn frame(kind: u8, id: u32, payload_len: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(5 + payload_len);
    b.put_u8(kind);
    b.put_u32(id);
    b
}

/// The START frame opening the answer to GET `id`: the file's `total` size, then the `offset`
/// and `length` of the range that follows in DATA frames.
pub fn start_frame(id: u32, total: u64, offset: u64, length: u64, content_type: &str) -> Bytes {
    let mut b = frame(kind::START, id, 24 + content_type.len());
    b.put_u64(total);
    b.put_u64(offset);
    b.put_u64(length);
    b.put_slice(content_type.as_bytes());
    b.freeze()
}

/// A DATA frame: the next bytes of GET `id`'s range (at most [`chunk_for`] of the channel).
pub fn data_frame(id: u32, data: &[u8]) -> Bytes {
    let mut b = frame(kind::DATA, id, data.len());
    b.put_slice(data);
    b.freeze()
}

/// The END frame: GET `id`'s range was sent whole.
pub fn end_frame(id: u32) -> Bytes {
    frame(kind::END, id, 0).freeze()
}

/// An ERROR frame ending GET `id` with an HTTP-like `status` and a message for the user.
pub fn error_frame(id: u32, status: u16, message: &str) -> Bytes {
    let mut b = frame(kind::ERROR, id, 2 + message.len());
    b.put_u16(status);
    b.put_slice(message.as_bytes());
    b.freeze()
}

/// A decoded binary frame (what a client sees); used by our Rust client and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Start {
        id: u32,
        total: u64,
        offset: u64,
        length: u64,
        content_type: String,
    },
    Data {
        id: u32,
        data: Bytes,
    },
    End {
        id: u32,
    },
    Error {
        id: u32,
        status: u16,
        message: String,
    },
}

impl Frame {
    /// Reads one binary message as a frame; none when it is too short for its kind or of an
    /// unknown kind.
    pub fn decode(mut b: Bytes) -> Option<Frame> {
        use bytes::Buf;
        if b.len() < 5 {
            return None;
        }
        let k = b.get_u8();
        let id = b.get_u32();
        Some(match k {
            kind::START if b.len() >= 24 => {
                let (total, offset, length) = (b.get_u64(), b.get_u64(), b.get_u64());
                Frame::Start {
                    id,
                    total,
                    offset,
                    length,
                    content_type: String::from_utf8_lossy(&b).into_owned(),
                }
            }
            kind::DATA => Frame::Data { id, data: b },
            kind::END => Frame::End { id },
            kind::ERROR if b.len() >= 2 => {
                let status = b.get_u16();
                Frame::Error {
                    id,
                    status,
                    message: String::from_utf8_lossy(&b).into_owned(),
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_protocols() {
        let r = Request::parse(
            br#"{"type":"hijackReq","ts":"/video/task_1/index.m3u8","id":"req_1_2"}"#,
        )
        .expect("hijack");
        assert_eq!(
            r,
            Request::Hijack {
                id: "req_1_2".into(),
                url: "/video/task_1/index.m3u8".into()
            }
        );
        let r = Request::parse(
            br#"{"type":"get","id":7,"path":"/video/task_1/index0.ts","offset":10,"length":5}"#,
        )
        .expect("get");
        assert_eq!(
            r,
            Request::Get {
                id: 7,
                url: "/video/task_1/index0.ts".into(),
                offset: 10,
                length: Some(5)
            }
        );
        assert_eq!(
            Request::parse(br#"{"type":"cancel","id":7}"#),
            Ok(Request::Cancel { id: 7 })
        );
        assert!(matches!(
            Request::parse(b"{nope"),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            Request::parse(&vec![b' '; MAX_REQUEST + 1]),
            Err(RequestError::TooLarge(_))
        ));
    }

    #[test]
    fn original_slices_match_the_contract() {
        assert_eq!(slice_count(0), 1);
        assert_eq!(slice_count(16384), 1);
        assert_eq!(slice_count(16385), 2);
        let json: serde_json::Value =
            serde_json::from_slice(&hijack_slice("r1", true, 0, 1, 3, b"abc")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"type":"hijackRespText","id":"r1","sliceNum":0,"totalSliceNum":1,"totalLength":3,"payload":"YWJj"})
        );
        let err: serde_json::Value =
            serde_json::from_slice(&hijack_error("r2", "File not found")).expect("json");
        assert_eq!(
            err,
            serde_json::json!({"type":"hijackError","id":"r2","error":"File not found"})
        );
    }

    #[test]
    fn chunks_fit_the_negotiated_message_size() {
        assert_eq!(chunk_for(65536), 65536 - 64);
        assert_eq!(chunk_for(262144), MAX_CHUNK);
        assert_eq!(chunk_for(1024), 16 * 1024);
    }

    #[test]
    fn frames_round_trip() {
        let f = Frame::decode(start_frame(9, 100, 10, 90, "video/mp2t")).expect("start");
        assert_eq!(
            f,
            Frame::Start {
                id: 9,
                total: 100,
                offset: 10,
                length: 90,
                content_type: "video/mp2t".into()
            }
        );
        assert_eq!(
            Frame::decode(data_frame(9, b"xy")),
            Some(Frame::Data {
                id: 9,
                data: Bytes::from_static(b"xy")
            })
        );
        assert_eq!(Frame::decode(end_frame(9)), Some(Frame::End { id: 9 }));
        assert_eq!(
            Frame::decode(error_frame(9, 404, "nope")),
            Some(Frame::Error {
                id: 9,
                status: 404,
                message: "nope".into()
            })
        );
        assert_eq!(Frame::decode(Bytes::from_static(b"{\"type\"")), None);
    }
}
