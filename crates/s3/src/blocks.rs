//! Streaming object bodies into blocks and back.
//!
//! A PUT is read chunk by chunk: small bodies (up to [`INLINE_BYTES_MAX`],
//! thumbnails) end up inline in the object record; larger ones are cut
//! into [`BLOCK_BYTES`] blocks, each stored under its blake3 hash while the
//! next is read. At most [`BLOCK_WRITES_IN_FLIGHT`] blocks are being
//! written at once, so a request holds a few MiB whatever the object's
//! size. A GET fetches the blocks a range covers, a couple ahead.

use crate::catalog::Catalog;
use crate::records::{BlockRef, Data};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::StreamingBlob;
use s3s::{s3_error, S3Error};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Bodies up to this size are stored inside the object record.
pub const INLINE_BYTES_MAX: usize = 64 * 1024;
/// Size of every block but an object's last.
pub const BLOCK_BYTES: usize = 1024 * 1024;
/// Blocks of one request being written at once.
const BLOCK_WRITES_IN_FLIGHT: usize = 4;
/// Blocks of one GET fetched ahead of the one being sent.
const BLOCK_READS_AHEAD: usize = 2;

/// A body as stored.
pub struct Written {
    /// Bytes read.
    pub size: u64,
    /// Hex MD5 of the body (its ETag).
    pub md5_hex: String,
    /// Checksums computed over the body (those the hasher was set up for).
    pub checksums: s3s::dto::Checksum,
    /// Where the bytes went.
    pub data: Data,
}

/// Read `body` to its end, storing it inline or in blocks.
///
/// # Errors
///
/// The client's stream failing, or a block write missing its quorum.
pub async fn write_body(
    catalog: &Catalog,
    body: StreamingBlob,
    mut hasher: ChecksumHasher,
) -> Result<Written, S3Error> {
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let mut buf = BytesMut::new();
    let mut blocks: Vec<BlockRef> = Vec::new();
    let mut writes: JoinSet<Result<(), S3Error>> = JoinSet::new();
    let mut body = body.map_err(|e| s3_error!(IncompleteBody, "reading the request body: {e}"));
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        md5.update(&chunk);
        hasher.update(&chunk);
        size += chunk.len() as u64;
        buf.extend_from_slice(&chunk);
        while buf.len() >= BLOCK_BYTES {
            let block = buf.split_to(BLOCK_BYTES).freeze();
            store_block(catalog, block, &mut blocks, &mut writes).await?;
        }
    }
    let data = if blocks.is_empty() && buf.len() <= INLINE_BYTES_MAX {
        Data::Inline(buf.freeze())
    } else {
        if !buf.is_empty() {
            store_block(catalog, buf.freeze(), &mut blocks, &mut writes).await?;
        }
        while let Some(done) = writes.join_next().await {
            done.map_err(|e| s3_error!(InternalError, "block write task: {e}"))??;
        }
        Data::Blocks(blocks)
    };
    Ok(Written {
        size,
        md5_hex: hex::encode(md5.finalize()),
        checksums: hasher.finalize(),
        data,
    })
}

/// Start writing one block, first waiting for room among the writes in
/// flight (and failing if one of them failed).
async fn store_block(
    catalog: &Catalog,
    block: Bytes,
    blocks: &mut Vec<BlockRef>,
    writes: &mut JoinSet<Result<(), S3Error>>,
) -> Result<(), S3Error> {
    while writes.len() >= BLOCK_WRITES_IN_FLIGHT {
        if let Some(done) = writes.join_next().await {
            done.map_err(|e| s3_error!(InternalError, "block write task: {e}"))??;
        }
    }
    let hash = *blake3::hash(&block).as_bytes();
    blocks.push(BlockRef {
        hash,
        len: block.len() as u32,
    });
    let catalog = catalog.clone();
    writes.spawn(async move { catalog.put_block(&hash, block).await });
    Ok(())
}

/// Turn inline data into one block (to join it with others), or keep
/// blocks as they are.
///
/// # Errors
///
/// The block write missing its quorum.
pub async fn into_blocks(catalog: &Catalog, data: Data) -> Result<Vec<BlockRef>, S3Error> {
    match data {
        Data::Blocks(b) => Ok(b),
        Data::Inline(bytes) if bytes.is_empty() => Ok(Vec::new()),
        Data::Inline(bytes) => {
            let hash = *blake3::hash(&bytes).as_bytes();
            let len = bytes.len() as u32;
            catalog.put_block(&hash, bytes).await?;
            Ok(vec![BlockRef { hash, len }])
        }
    }
}

/// The bytes `range` (half-open, within the object) of `data`, streamed.
///
/// A task fetches the blocks (a couple ahead) into a small channel; the
/// response body drains it, and when the client goes away the task stops
/// at its next send.
pub fn read_range(catalog: &Catalog, data: &Data, range: std::ops::Range<u64>) -> ChunkStream {
    let pieces: Vec<Piece> = match data {
        Data::Inline(bytes) => vec![Piece::Inline(
            bytes.slice(range.start as usize..range.end as usize),
        )],
        Data::Blocks(blocks) => block_pieces(blocks, range),
    };
    let (tx, rx) = mpsc::channel(BLOCK_READS_AHEAD);
    let catalog = catalog.clone();
    tokio::spawn(async move {
        let mut chunks = futures::stream::iter(pieces)
            .map(|piece| {
                let catalog = catalog.clone();
                async move {
                    match piece {
                        Piece::Inline(b) => Ok(b),
                        Piece::Block { hash, from, to } => catalog
                            .get_block(&hash)
                            .await
                            .map(|b| b.slice(from..to))
                            .map_err(|e| std::io::Error::other(e.to_string())),
                    }
                }
            })
            .buffered(BLOCK_READS_AHEAD);
        while let Some(chunk) = chunks.next().await {
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    ChunkStream(rx)
}

/// A response body fed by [`read_range`]'s task.
pub struct ChunkStream(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

enum Piece {
    Inline(Bytes),
    Block {
        hash: [u8; 32],
        from: usize,
        to: usize,
    },
}

/// Which part of which block each byte of `range` comes from.
fn block_pieces(blocks: &[BlockRef], range: std::ops::Range<u64>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut offset = 0u64;
    for b in blocks {
        let (start, end) = (offset, offset + u64::from(b.len));
        offset = end;
        if end <= range.start || start >= range.end {
            continue;
        }
        pieces.push(Piece::Block {
            hash: b.hash,
            from: (range.start.max(start) - start) as usize,
            to: (range.end.min(end) - start) as usize,
        });
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(lens: &[u32]) -> Vec<BlockRef> {
        lens.iter()
            .enumerate()
            .map(|(i, len)| BlockRef {
                hash: [i as u8; 32],
                len: *len,
            })
            .collect()
    }

    fn spans(p: &[Piece]) -> Vec<(u8, usize, usize)> {
        p.iter()
            .map(|p| match p {
                Piece::Block { hash, from, to } => (hash[0], *from, *to),
                Piece::Inline(_) => (255, 0, 0),
            })
            .collect()
    }

    #[test]
    fn a_range_maps_to_the_blocks_it_covers() {
        let b = refs(&[10, 10, 5]);
        assert_eq!(
            spans(&block_pieces(&b, 0..25)),
            [(0, 0, 10), (1, 0, 10), (2, 0, 5)]
        );
        assert_eq!(spans(&block_pieces(&b, 5..15)), [(0, 5, 10), (1, 0, 5)]);
        assert_eq!(spans(&block_pieces(&b, 10..20)), [(1, 0, 10)]);
        assert_eq!(spans(&block_pieces(&b, 24..25)), [(2, 4, 5)]);
        assert!(block_pieces(&b, 25..25).is_empty());
    }
}
