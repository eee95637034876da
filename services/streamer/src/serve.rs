//! Answering one request: reads the file in chunks (never whole into memory) and hands each
//! message to a sender that applies the channel's back-pressure.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::files::{FileError, Root};
use crate::protocol::{self, SLICE};

/// Status codes of binary ERROR frames: the HTTP status of the error's reason, as the relay
/// answers it.
pub fn status_of(e: &FileError) -> u16 {
    e.reason().http_status()
}

/// Reads exactly `buf.len()` bytes unless the file ends first; returns how many were read.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let r = file.read(&mut buf[n..]).await?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(n)
}

/// The original protocol: the whole file in 16384-byte slices, in order, or one hijackError.
/// Returns false if the channel went away.
pub async fn hijack(root: &Root, id: &str, url: &str, out: &mpsc::Sender<Bytes>) -> bool {
    let opened = root.open_url(url).await;
    let (file_ref, mut file, len) = match opened {
        Ok(v) => v,
        Err(e) => {
            return out
                .send(protocol::hijack_error(id, &e.to_string()))
                .await
                .is_ok();
        }
    };
    let total = protocol::slice_count(len);
    let text = file_ref.is_text();
    let mut buf = vec![0u8; SLICE];
    for slice in 0..total {
        let n = match read_full(&mut file, &mut buf).await {
            Ok(n) => n,
            Err(e) => {
                return out
                    .send(protocol::hijack_error(
                        id,
                        &format!("cannot read the file: {e}"),
                    ))
                    .await
                    .is_ok();
            }
        };
        if out
            .send(protocol::hijack_slice(
                id,
                text,
                slice,
                total,
                len,
                &buf[..n],
            ))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

/// The binary protocol: START, DATA…, END for the byte range, or one ERROR frame.
/// DATA frames carry up to `chunk` bytes. Stops early when `cancel` fires (the client sent
/// `cancel`).
#[allow(clippy::too_many_arguments)]
pub async fn get(
    root: &Root,
    chunk: usize,
    id: u32,
    url: &str,
    offset: u64,
    length: Option<u64>,
    out: &mpsc::Sender<Bytes>,
    cancel: &CancellationToken,
) -> bool {
    let opened = root.open_url(url).await;
    let (file_ref, mut file, total) = match opened {
        Ok(v) => v,
        Err(e) => {
            return out
                .send(protocol::error_frame(id, status_of(&e), &e.to_string()))
                .await
                .is_ok();
        }
    };
    if offset > total {
        return out
            .send(protocol::error_frame(
                id,
                416,
                "offset beyond the end of the file",
            ))
            .await
            .is_ok();
    }
    let length = length.unwrap_or(total - offset).min(total - offset);
    if let Err(e) = file.seek(std::io::SeekFrom::Start(offset)).await {
        return out
            .send(protocol::error_frame(
                id,
                500,
                &format!("cannot read the file: {e}"),
            ))
            .await
            .is_ok();
    }
    if out
        .send(protocol::start_frame(
            id,
            total,
            offset,
            length,
            file_ref.content_type(),
        ))
        .await
        .is_err()
    {
        return false;
    }
    let mut left = length;
    let mut buf = vec![0u8; chunk];
    while left > 0 {
        if cancel.is_cancelled() {
            return true;
        }
        let want = left.min(chunk as u64) as usize;
        let n = match read_full(&mut file, &mut buf[..want]).await {
            Ok(0) => {
                return out
                    .send(protocol::error_frame(
                        id,
                        500,
                        "file shrank while being read",
                    ))
                    .await
                    .is_ok();
            }
            Ok(n) => n,
            Err(e) => {
                return out
                    .send(protocol::error_frame(
                        id,
                        500,
                        &format!("cannot read the file: {e}"),
                    ))
                    .await
                    .is_ok();
            }
        };
        left -= n as u64;
        if out.send(protocol::data_frame(id, &buf[..n])).await.is_err() {
            return false;
        }
    }
    out.send(protocol::end_frame(id)).await.is_ok()
}
