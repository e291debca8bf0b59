//! zstd with per-thread reusable contexts and bounded decompression.

use std::cell::RefCell;

use crate::error::{Error, Result};

/// zstd settings of one frame kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tuning {
    pub level: i32,
    /// Shortest match zstd looks for (3..=7); `None` keeps the level's own.
    pub min_match: Option<u32>,
}

struct Ctx {
    tuning: Option<Tuning>,
    cctx: Option<zstd::bulk::Compressor<'static>>,
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    scratch: Vec<u8>,
}

thread_local! {
    static CTX: RefCell<Ctx> = const {
        RefCell::new(Ctx { tuning: None, cctx: None, dctx: None, scratch: Vec::new() })
    };
}

/// Appends one zstd frame of `src` to `out`. Returns false, leaving `out` as
/// it was, if the frame would not be smaller than `src`.
pub(crate) fn compress(src: &[u8], tuning: Tuning, out: &mut Vec<u8>) -> bool {
    CTX.with(|c| {
        let c = &mut *c.borrow_mut();
        if c.cctx.is_none() || c.tuning != Some(tuning) {
            c.cctx = zstd::bulk::Compressor::new(tuning.level).ok();
            if let (Some(z), Some(m)) = (c.cctx.as_mut(), tuning.min_match) {
                if z.set_parameter(zstd::zstd_safe::CParameter::MinMatch(m))
                    .is_err()
                {
                    c.cctx = None;
                }
            }
            c.tuning = Some(tuning);
        }
        let Some(z) = c.cctx.as_mut() else {
            return false;
        };
        c.scratch.clear();
        c.scratch
            .reserve(zstd::zstd_safe::compress_bound(src.len()));
        match z.compress_to_buffer(src, &mut c.scratch) {
            Ok(n) if n < src.len() => {
                out.extend_from_slice(&c.scratch[..n]);
                true
            }
            _ => false,
        }
    })
}

/// Decompresses one zstd frame, appending its content to `out`. Fails,
/// leaving `out` as it was, if the content would exceed `max` bytes: the
/// output buffer is sized by the caller's limit, never by the frame header.
pub(crate) fn decompress(src: &[u8], max: usize, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.resize(start + max, 0);
    let res = CTX.with(|c| {
        let c = &mut *c.borrow_mut();
        if c.dctx.is_none() {
            c.dctx = zstd::bulk::Decompressor::new().ok();
        }
        match c.dctx.as_mut() {
            Some(z) => z.decompress_to_buffer(src, &mut out[start..]),
            None => Err(std::io::Error::other("cannot allocate a zstd context")),
        }
    });
    match res {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(Error::corrupt(
                "zstd frame",
                format!("{e} (output limit {max} bytes)"),
            ))
        }
    }
}
