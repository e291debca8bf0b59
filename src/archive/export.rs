//! Writing a bundle: the selected models, each followed by its versions,
//! each version preceded by the blobs it names that the bundle has not
//! carried yet. A blob's content is its chunks in order: the chunks the
//! target holds already (the `have` list) and those this bundle carried
//! before are named only; the others are carried whole, as their raw bytes
//! compressed with zstd (delta chains are resolved, not carried: a bundle
//! must be readable without the store's delta bases, and the target
//! stores each blob with its own chunking and codecs).

use std::collections::HashSet;
use std::io::Write;

use super::bundle::{BundleWriter, Kind};
use super::{ExportReport, ExportSpec};
use crate::blob::Core;
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId};
use crate::meta::records::encode_postcard;
use crate::meta::registry_records::{EntityId, ModelRecord};
use crate::meta::tables::{blobs, index, manifests, models, versions};

/// zstd level for chunk bytes in a bundle: fast, and most of what level
/// 19 would save on float weights.
const CHUNK_LEVEL: i32 = 3;

struct Exporter<'a, W: Write> {
    core: &'a Core,
    out: BundleWriter<W>,
    have: &'a HashSet<ChunkId>,
    sent_blobs: HashSet<BlobId>,
    sent_chunks: HashSet<ChunkId>,
    report: ExportReport,
    progress: &'a dyn Fn(u64),
    raw: Vec<u8>,
    scratch: Vec<u8>,
    /// Raw bytes read so far, for `progress`.
    done: u64,
}

impl Core {
    /// See [`crate::Store::export`].
    pub(crate) fn export<W: Write>(
        &self,
        spec: &ExportSpec,
        out: W,
        progress: &dyn Fn(u64),
    ) -> Result<(W, ExportReport)> {
        let meta = self.chunks().meta();
        // Resolve the selection first: an unknown name fails before a byte
        // is written.
        let mut selected: Vec<(EntityId, ModelRecord, Vec<u32>)> = Vec::new();
        if spec.all {
            for id in models::ids(meta) {
                let id = id?;
                let rec = models::get(meta, &id)?.ok_or_else(|| Error::not_found("model", id))?;
                let vs = versions::numbers(meta, &id).collect::<Result<Vec<_>>>()?;
                selected.push((id, rec, vs));
            }
        }
        for (name, range) in &spec.models {
            crate::meta::names::check_name(name)?;
            let id = index::models_named(meta, name)?
                .into_iter()
                .max()
                .ok_or_else(|| Error::not_found("model", name))?;
            if selected.iter().any(|(s, _, _)| *s == id) {
                continue;
            }
            let rec = models::get(meta, &id)?.ok_or_else(|| Error::not_found("model", name))?;
            let mut vs = versions::numbers(meta, &id).collect::<Result<Vec<_>>>()?;
            if let Some((lo, hi)) = range {
                vs.retain(|v| v >= lo && v <= hi);
                if vs.is_empty() {
                    return Err(Error::not_found(
                        "version",
                        if lo == hi {
                            format!("{name}@{lo}")
                        } else {
                            format!("{name}@{lo}..{hi}")
                        },
                    ));
                }
            }
            selected.push((id, rec, vs));
        }
        let mut ex = Exporter {
            core: self,
            out: BundleWriter::new(out)?,
            have: &spec.have,
            sent_blobs: HashSet::new(),
            sent_chunks: HashSet::new(),
            report: ExportReport::default(),
            progress,
            raw: Vec::new(),
            scratch: Vec::new(),
            done: 0,
        };
        for (id, rec, vs) in &selected {
            ex.model(id, rec, vs)?;
        }
        let (out, len) = ex.out.finish()?;
        ex.report.bundle_bytes = len;
        Ok((out, ex.report))
    }
}

impl<W: Write> Exporter<'_, W> {
    fn model(&mut self, id: &EntityId, rec: &ModelRecord, vs: &[u32]) -> Result<()> {
        self.out
            .frame(Kind::Model, &[&id.0, &encode_postcard(rec)])?;
        self.report.models += 1;
        let meta = self.core.chunks().meta();
        for &v in vs {
            let vrec = versions::get(meta, id, v)?
                .ok_or_else(|| Error::not_found("version", format!("{}@{v}", rec.name)))?;
            for f in &vrec.files {
                self.blob(&f.blob)?;
            }
            self.out.frame(
                Kind::Version,
                &[&id.0, &v.to_be_bytes(), &encode_postcard(&vrec)],
            )?;
            self.report.versions += 1;
        }
        Ok(())
    }

    fn blob(&mut self, id: &BlobId) -> Result<()> {
        if !self.sent_blobs.insert(*id) {
            return Ok(());
        }
        let chunks = self.core.chunks();
        let meta = chunks.meta();
        let rec = blobs::get(meta, id)?.ok_or_else(|| Error::not_found("blob", id))?;
        self.out
            .frame(Kind::BlobBegin, &[&id.0 .0, &rec.size.to_le_bytes()])?;
        let mut offset = 0u64;
        for seg in manifests::segments(meta, rec.manifest, None) {
            for e in seg?.entries? {
                if self.have.contains(&e.id) || self.sent_chunks.contains(&e.id) {
                    self.out
                        .frame(Kind::ChunkRef, &[&e.id.0, &e.len.to_le_bytes()])?;
                    self.report.chunks_named += 1;
                } else {
                    let object = || format!("blob {id}");
                    chunks.read_chunk(&e.id, &object, offset, &mut self.scratch, &mut self.raw)?;
                    let z = zstd::bulk::compress(&self.raw, CHUNK_LEVEL)
                        .map_err(|e| Error::from_io("compressing a chunk for the bundle", e))?;
                    self.out
                        .frame(Kind::Chunk, &[&e.id.0, &e.len.to_le_bytes(), &z])?;
                    self.sent_chunks.insert(e.id);
                    self.report.chunks_carried += 1;
                    self.report.raw_bytes_carried += u64::from(e.len);
                }
                offset += u64::from(e.len);
                self.done += u64::from(e.len);
                (self.progress)(self.done);
            }
        }
        if offset != rec.size {
            return Err(Error::corrupt(
                format!("blob {id}"),
                format!("its manifest covers {offset} bytes of {}", rec.size),
            ));
        }
        self.out.frame(Kind::BlobEnd, &[])?;
        self.report.blobs += 1;
        Ok(())
    }
}
