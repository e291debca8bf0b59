//! The end of an import (see `import.rs`): what the bundle would change
//! or conflict with, planned before the commit and again under the commit
//! lock, and the one commit of every record and staged blob.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::*;

impl Importer<'_> {
    /// What importing would conflict with in `meta` (see
    /// [`ImportReport::conflicts`]), and the versions each model would gain.
    fn plan(&self, meta: &Meta) -> Result<Plan> {
        let mut conflicts = Vec::new();
        let mut adds: BTreeMap<EntityId, Vec<u32>> = BTreeMap::new();
        for (id, (rec, _)) in &self.models {
            let bundled = self.versions.range((*id, 0)..=(*id, u32::MAX));
            let existing = models::get(meta, id)?;
            match &existing {
                None => {
                    let others = index::models_named(meta, &rec.name)?;
                    if !others.is_empty() {
                        conflicts.push(format!(
                            "model {}: this store has another model of that name ({}), the bundle's is {id}",
                            rec.name,
                            others.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
                        ));
                        continue;
                    }
                    if let Some(ext) = &rec.external {
                        if let Some(other) = index::model_by_url(meta, &ext.url)? {
                            conflicts.push(format!(
                                "model {}: this store registered its URL {} as model {other}",
                                rec.name, ext.url
                            ));
                            continue;
                        }
                    }
                }
                Some(have) if have.name != rec.name => {
                    conflicts.push(format!(
                        "model {id}: named {} here and {} in the bundle",
                        have.name, rec.name
                    ));
                    continue;
                }
                Some(_) => {}
            }
            let mut new = Vec::new();
            let before = conflicts.len();
            for ((_, v), vrec) in bundled {
                match versions::get(meta, id, *v)? {
                    Some(here) if here.files != vrec.files => conflicts.push(format!(
                        "{}@{v}: this store's version has other files than the bundle's",
                        rec.name
                    )),
                    Some(_) => {}
                    None => {
                        if let Some(have) = &existing {
                            if have.finalized_ms.is_some() {
                                conflicts.push(format!(
                                    "{}@{v}: the model is finalized here, without this version",
                                    rec.name
                                ));
                                continue;
                            }
                        }
                        new.push(*v);
                    }
                }
            }
            if conflicts.len() == before {
                adds.insert(*id, new);
            }
        }
        let mut exps = BTreeSet::new();
        for (id, rec) in &self.experiments {
            match experiments::get(meta, id)? {
                None => {
                    exps.insert(*id);
                }
                Some(here) if here == *rec => {}
                Some(_) => conflicts.push(format!(
                    "experiment {id} ({}/{}): this store has it in another state",
                    rec.project, rec.name
                )),
            }
        }
        let mut new_buckets = BTreeSet::new();
        for name in self.buckets.keys() {
            if buckets::get(meta, name)?.is_none() {
                new_buckets.insert(name.clone());
            }
        }
        let mut new_objects = BTreeSet::new();
        for ((bucket, key), rec) in &self.objects {
            match objects::get(meta, bucket, key)? {
                None => {
                    new_objects.insert((bucket.clone(), key.clone()));
                }
                Some(here) if here == *rec => {}
                Some(_) => conflicts.push(format!(
                    "object {bucket}/{key}: this store holds it with other content or metadata"
                )),
            }
        }
        Ok(Plan {
            conflicts,
            versions: adds,
            experiments: exps,
            buckets: new_buckets,
            objects: new_objects,
        })
    }

    pub(super) fn commit(mut self, opts: &ImportOptions) -> Result<ImportReport> {
        let meta = self.core.chunks().meta();
        let plan = self.plan(meta)?;
        let (conflicts, adds) = (&plan.conflicts, &plan.versions);
        if !conflicts.is_empty() && !opts.skip_conflicts {
            return Err(Error::invalid(
                "bundle",
                format!("{} conflict(s)", conflicts.len()),
                format!("nothing was imported: {}", conflicts.join("; ")),
            ));
        }
        // The staged blobs the imported versions use; the others are given
        // up when dropped.
        let mut used = BTreeSet::new();
        for (id, vs) in adds {
            for v in vs {
                used.extend(self.versions[&(*id, *v)].files.iter().map(|f| f.blob));
            }
        }
        for ((id, _, _), art) in &self.artifacts {
            if let (true, ArtifactBody::Blob { blob, .. }) =
                (plan.experiments.contains(id), &art.body)
            {
                used.insert(*blob);
            }
        }
        for (bucket, key) in &plan.objects {
            used.insert(BlobId(Hash32(
                self.objects[&(bucket.clone(), key.clone())].blob,
            )));
        }
        let staged: Vec<StagedBlob> = used.iter().filter_map(|b| self.staged.remove(b)).collect();
        let chunks: Vec<_> = staged
            .iter()
            .flat_map(|b| b.chunks.iter().copied())
            .collect();
        let (models_ref, versions_ref) = (&self.models, &self.versions);
        let this = &self;
        let plan_ref = &plan;
        let (added_exps, added_models, added_versions) =
            self.core.chunks().commit(&chunks, Batch::default(), |meta, stats, batch| {
                // The store may have changed since the plan: plan again under
                // the commit lock, and give up if the answer differs.
                if this.plan(meta)? != *plan_ref {
                    return Err(Error::invalid(
                        "bundle",
                        "import",
                        "the store changed while the bundle was read; nothing was imported (import again)",
                    ));
                }
                let mut seen = HashSet::new();
                for b in &staged {
                    b.apply(meta, stats, batch, &mut seen, |_| false)?;
                }
                let blob_ref = |batch: &mut Batch, blob: &BlobId| -> Result<()> {
                    if !seen.contains(blob) && !blobs::exists(meta, blob)? {
                        return Err(Error::not_found("blob", blob));
                    }
                    refs::change(batch, Count::Blob(*blob), 1);
                    Ok(())
                };
                for id in &plan_ref.experiments {
                    let rec = &this.experiments[id];
                    index::apply(batch, &BTreeSet::new(), &index_keys::experiment_keys(id, rec));
                    experiments::put(batch, id, rec);
                    for ((_, seq), line) in this.console.range((*id, 0)..=(*id, u64::MAX)) {
                        console::put(batch, id, *seq, line);
                    }
                    for ((e, metric, variant, it), value) in &this.scalars {
                        if e == id {
                            scalars::put(batch, id, metric, variant, *it, *value);
                        }
                    }
                    for ((e, name, revision), art) in &this.artifacts {
                        if e == id {
                            if let ArtifactBody::Blob { blob, .. } = &art.body {
                                blob_ref(batch, blob)?;
                            }
                            artifacts::put(batch, id, name, *revision, art);
                        }
                    }
                }
                for name in &plan_ref.buckets {
                    buckets::put(batch, name, &this.buckets[name]);
                }
                for (bucket, key) in &plan_ref.objects {
                    let rec = &this.objects[&(bucket.clone(), key.clone())];
                    let blob = BlobId(Hash32(rec.blob));
                    if !seen.contains(&blob) && !blobs::exists(meta, &blob)? {
                        return Err(Error::not_found("blob", blob));
                    }
                    // Counts the reference on the blob itself.
                    objects::put(batch, bucket, key, rec, None);
                }
                let (mut added_models, mut added_versions) = (0u64, 0u64);
                for (id, vs) in adds {
                    let (rec, _) = &models_ref[id];
                    let newest = vs.iter().copied().max().unwrap_or(0);
                    match models::get(meta, id)? {
                        None => {
                            let mut rec = rec.clone();
                            rec.latest = rec.latest.max(newest);
                            rec.aliases.retain(|_, v| vs.contains(v));
                            if let Some(ext) = &rec.external {
                                index::put_url(batch, &ext.url, id);
                            }
                            index::apply(batch, &BTreeSet::new(), &index_keys::model_keys(id, &rec));
                            models::put(batch, id, &rec);
                            added_models += 1;
                        }
                        Some(have) if newest > have.latest => {
                            let mut rec = have.clone();
                            rec.latest = newest;
                            index::apply(
                                batch,
                                &index_keys::model_keys(id, &have),
                                &index_keys::model_keys(id, &rec),
                            );
                            models::put(batch, id, &rec);
                        }
                        Some(_) => {}
                    }
                    for v in vs {
                        let vrec = &versions_ref[&(*id, *v)];
                        for f in &vrec.files {
                            blob_ref(batch, &f.blob)?;
                            stats.logical_bytes += f.size;
                        }
                        index::insert(batch, index_keys::version_keys(id, *v, vrec));
                        versions::put(batch, id, *v, vrec);
                        stats.versions += 1;
                        added_versions += 1;
                    }
                }
                Ok((plan_ref.experiments.len() as u64, added_models, added_versions))
            })?;
        for b in &staged {
            b.committed();
        }
        self.report.experiments_added = added_exps;
        self.report.objects_added = plan.objects.len() as u64;
        self.report.models_added = added_models;
        self.report.versions_added = added_versions;
        self.report.blobs_added = staged.len() as u64;
        self.report.conflicts = plan.conflicts;
        Ok(self.report)
    }
}
