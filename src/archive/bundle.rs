//! The bundle file's framing: a header, length-prefixed frames, and a
//! trailer with the frame count and a digest of every byte before it.
//!
//! ```text
//! header   "MVBUNDLE" (8 bytes) | format version u32 LE (1) | flags u32 LE (0)
//! frame    kind u8 | payload length u32 LE | payload
//! trailer  a frame of kind END: frame count u64 LE | blake3 of every byte before it (32)
//! ```
//!
//! The reader treats every byte as hostile: a payload longer than
//! [`MAX_FRAME`] is refused before anything is allocated for it, an unknown
//! kind, a short read or bytes after the trailer are errors naming the byte
//! offset, and frames are handed out as they are read (the caller may act on
//! them tentatively) but the stream only counts as whole once
//! [`BundleReader::next`] has returned `None`, after checking the trailer.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};

/// The first 8 bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"MVBUNDLE";
/// The bundle format this build writes and reads.
pub const VERSION: u32 = 1;
/// The largest frame payload: a chunk (at most 16 MiB raw, compressed
/// with zstd, whose bound is a little more than the input) and its header.
pub const MAX_FRAME: u32 = (16 << 20) + (1 << 20);

/// What a frame holds (see docs/FORMAT.md, "Bundles").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A model: id (16) ‖ its stored `models` record.
    Model = 1,
    /// A version: model id (16) ‖ version u32 BE ‖ its stored `versions` record.
    Version = 2,
    /// A blob's content follows: blob id (32) ‖ size u64 LE.
    BlobBegin = 3,
    /// The next bytes of the blob: chunk id (32) ‖ raw length u32 LE ‖ the
    /// raw bytes compressed as one zstd frame.
    Chunk = 4,
    /// The next bytes of the blob are a chunk the target already holds:
    /// chunk id (32) ‖ raw length u32 LE.
    ChunkRef = 5,
    /// The blob's content is complete (empty payload).
    BlobEnd = 6,
    /// An experiment: id (16) ‖ its stored `experiments` record.
    Experiment = 7,
    /// A console line: experiment id (16) ‖ version byte 1 + postcard
    /// (sequence number, `ConsoleRecord`).
    Console = 8,
    /// A scalar: experiment id (16) ‖ version byte 1 + postcard (metric,
    /// variant, iteration, value).
    Scalar = 9,
    /// An artifact revision: experiment id (16) ‖ version byte 1 + postcard
    /// (name, revision, `ArtifactRecord`).
    Artifact = 10,
    /// An S3 bucket: version byte 1 + postcard (name, `BucketRecord`).
    Bucket = 11,
    /// An S3 object: version byte 1 + postcard (bucket, key), then its
    /// `objects` value as stored.
    Object = 12,
    /// The trailer.
    End = 255,
}

impl Kind {
    fn parse(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Model,
            2 => Kind::Version,
            3 => Kind::BlobBegin,
            4 => Kind::Chunk,
            5 => Kind::ChunkRef,
            6 => Kind::BlobEnd,
            7 => Kind::Experiment,
            8 => Kind::Console,
            9 => Kind::Scalar,
            10 => Kind::Artifact,
            11 => Kind::Bucket,
            12 => Kind::Object,
            255 => Kind::End,
            _ => return None,
        })
    }
}

/// Writes a bundle: the header at once, frames as they come, the trailer
/// at [`BundleWriter::finish`].
pub struct BundleWriter<W: Write> {
    out: W,
    hasher: blake3::Hasher,
    frames: u64,
    bytes: u64,
}

impl<W: Write> BundleWriter<W> {
    pub fn new(out: W) -> Result<Self> {
        let mut w = BundleWriter {
            out,
            hasher: blake3::Hasher::new(),
            frames: 0,
            bytes: 0,
        };
        let mut header = Vec::with_capacity(16);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        w.put(&header)?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.hasher.update(b);
        self.bytes += b.len() as u64;
        self.out
            .write_all(b)
            .map_err(|e| Error::from_io("writing the bundle", e))
    }

    /// Writes one frame made of `parts` end to end.
    pub fn frame(&mut self, kind: Kind, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_FRAME)
            .ok_or_else(|| Error::invalid("bundle frame", len, "is longer than a frame may be"))?;
        let mut head = [0u8; 5];
        head[0] = kind as u8;
        head[1..].copy_from_slice(&len.to_le_bytes());
        self.put(&head)?;
        for p in parts {
            self.put(p)?;
        }
        self.frames += 1;
        Ok(())
    }

    /// Writes the trailer and flushes; returns the output and the bundle's
    /// length in bytes.
    pub fn finish(mut self) -> Result<(W, u64)> {
        let digest = *self.hasher.finalize().as_bytes();
        let mut body = [0u8; 40];
        body[..8].copy_from_slice(&self.frames.to_le_bytes());
        body[8..].copy_from_slice(&digest);
        let mut head = [0u8; 5];
        head[0] = Kind::End as u8;
        head[1..].copy_from_slice(&40u32.to_le_bytes());
        self.out
            .write_all(&head)
            .and_then(|()| self.out.write_all(&body))
            .and_then(|()| self.out.flush())
            .map_err(|e| Error::from_io("writing the bundle", e))?;
        Ok((self.out, self.bytes + 45))
    }
}

/// One frame read.
pub struct Frame {
    pub kind: Kind,
    pub payload: Vec<u8>,
    /// Where the frame starts in the bundle.
    pub offset: u64,
}

/// Reads a bundle frame by frame, checking the framing and, at the end,
/// the trailer (see the module docs).
pub struct BundleReader<R: Read> {
    input: R,
    hasher: blake3::Hasher,
    frames: u64,
    offset: u64,
    done: bool,
}

/// A damaged bundle: what was wrong and at which byte.
pub fn damaged(offset: u64, detail: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("bundle at byte {offset}"), detail)
}

impl<R: Read> BundleReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Self> {
        let mut header = [0u8; 16];
        read_full(&mut input, &mut header, 0, "the bundle header")?;
        if &header[..8] != MAGIC {
            return Err(damaged(
                0,
                "this is not a modelvault bundle (no MVBUNDLE header)",
            ));
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                what: "bundle format",
                found: version,
                supported: VERSION,
            });
        }
        let flags = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if flags != 0 {
            return Err(damaged(8, format!("unknown header flags {flags:#x}")));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header);
        Ok(BundleReader {
            input,
            hasher,
            frames: 0,
            offset: 16,
            done: false,
        })
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame; `None` once the trailer was read and checked (the
    /// frame count and the digest match, and nothing follows it).
    pub fn next(&mut self) -> Result<Option<Frame>> {
        if self.done {
            return Ok(None);
        }
        let at = self.offset;
        let mut head = [0u8; 5];
        read_full(&mut self.input, &mut head, at, "a frame header")?;
        let kind = Kind::parse(head[0])
            .ok_or_else(|| damaged(at, format!("unknown frame kind {}", head[0])))?;
        let len = u32::from_le_bytes(head[1..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(damaged(
                at,
                format!("a frame of {len} bytes (at most {MAX_FRAME})"),
            ));
        }
        let mut payload = vec![0u8; len as usize];
        read_full(&mut self.input, &mut payload, at + 5, "a frame's payload")?;
        self.offset = at + 5 + u64::from(len);
        if kind == Kind::End {
            self.check_trailer(at, &payload)?;
            self.done = true;
            return Ok(None);
        }
        self.hasher.update(&head);
        self.hasher.update(&payload);
        self.frames += 1;
        Ok(Some(Frame {
            kind,
            payload,
            offset: at,
        }))
    }

    fn check_trailer(&mut self, at: u64, body: &[u8]) -> Result<()> {
        if body.len() != 40 {
            return Err(damaged(
                at,
                format!("a trailer of {} bytes (40 expected)", body.len()),
            ));
        }
        let frames = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
        if frames != self.frames {
            return Err(damaged(
                at,
                format!(
                    "the trailer counts {frames} frames, the bundle has {}",
                    self.frames
                ),
            ));
        }
        let digest = *self.hasher.finalize().as_bytes();
        if body[8..] != digest {
            return Err(damaged(
                at,
                "the trailer's digest does not match the bundle's bytes",
            ));
        }
        let mut extra = [0u8; 1];
        match self.input.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(damaged(self.offset, "bytes follow the trailer")),
            Err(e) => Err(Error::from_io("reading the bundle", e)),
        }
    }
}

/// Fills `buf`, or fails naming what was cut off and where.
fn read_full(r: &mut impl Read, buf: &mut [u8], at: u64, what: &str) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(damaged(
                    at + got as u64,
                    format!("the bundle ends inside {what} (cut off?)"),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::from_io("reading the bundle", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = BundleWriter::new(Vec::new()).unwrap();
        w.frame(Kind::Model, &[b"abc", b"def"]).unwrap();
        w.frame(Kind::BlobEnd, &[]).unwrap();
        let (out, len) = w.finish().unwrap();
        assert_eq!(out.len() as u64, len);
        out
    }

    fn read_all(b: &[u8]) -> Result<Vec<(Kind, Vec<u8>)>> {
        let mut r = BundleReader::new(b)?;
        let mut v = Vec::new();
        while let Some(f) = r.next()? {
            v.push((f.kind, f.payload));
        }
        Ok(v)
    }

    #[test]
    fn frames_round_trip_and_the_trailer_is_checked() {
        let b = sample();
        let frames = read_all(&b).unwrap();
        assert_eq!(
            frames,
            vec![(Kind::Model, b"abcdef".to_vec()), (Kind::BlobEnd, vec![])]
        );
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused() {
        let b = sample();
        for cut in 0..b.len() {
            let err = read_all(&b[..cut]).unwrap_err().to_string();
            assert!(err.contains("bundle"), "cut at {cut}: {err}");
        }
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x40;
            assert!(read_all(&d).is_err(), "flipped byte {i} was accepted");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(read_all(&longer)
            .unwrap_err()
            .to_string()
            .contains("follow the trailer"));
    }

    #[test]
    fn an_absurd_length_is_refused_before_allocating() {
        let mut b = sample()[..16].to_vec();
        b.push(Kind::Chunk as u8);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read_all(&b).unwrap_err().to_string();
        assert!(
            err.contains("at byte 16") && err.contains("at most"),
            "{err}"
        );
    }
}
