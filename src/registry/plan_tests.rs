//! Model queries are answered from the indexes, not by a scan: the records
//! a query loads are counted (`models::reads` and `index::reads` of
//! `crate::meta::tables`, test builds only) on a registry of a few hundred
//! models.

use std::collections::BTreeSet;

use crate::meta::tables::{index, models};
use crate::query::{self, Value};
use crate::{Durability, EntityId, NewModel, Store};

const MODELS: usize = 400;

/// Model records and index entries read while answering `q`, and the ids
/// found.
fn run(store: &Store, q: &str) -> (BTreeSet<EntityId>, u64, u64) {
    let meta = store.inner.chunks().meta();
    let (models_before, index_before) = (models::reads(meta), index::reads(meta));
    let found = store.find_models(&query::parse(q).unwrap()).unwrap();
    (
        found.iter().map(|m| m.id).collect(),
        models::reads(meta) - models_before,
        index::reads(meta) - index_before,
    )
}

#[test]
fn indexed_queries_load_only_their_candidates() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::options()
        .durability(Durability::Eventual)
        .open(tmp.path().join("vault"))
        .unwrap();
    let mut ids = Vec::with_capacity(MODELS);
    for i in 0..MODELS {
        let labels = [(if i % 100 == 0 { "cat" } else { "dog" }.to_string(), 1)];
        let m = store
            .create_model(
                NewModel::new(format!("m{i}"))
                    .project(format!("p{}", i % 10))
                    .tags([format!("t{}", i % 50)])
                    .metadata("epochs", Value::Int(i as i64))
                    .labels(labels.into_iter().collect()),
            )
            .unwrap();
        ids.push(m.id());
    }
    let expect = |pred: &dyn Fn(usize) -> bool| -> BTreeSet<EntityId> {
        (0..MODELS).filter(|&i| pred(i)).map(|i| ids[i]).collect()
    };
    // (query, the models it matches, the candidates its indexes yield)
    type Case<'a> = (&'a str, &'a dyn Fn(usize) -> bool, usize);
    let cases: [Case; 6] = [
        ("tag = t7", &|i| i % 50 == 7, 8),
        ("name = m42", &|i| i == 42, 1),
        ("project = p3 AND tag = t13", &|i| i % 50 == 13, 8),
        ("metadata.epochs >= 390", &|i| i >= 390, 10),
        ("metadata.epochs < 5 AND project = p1", &|i| i == 1, 1),
        // A conjunct no index answers filters the indexed one's candidates.
        ("tag = t0 AND labels.cat = 1", &|i| i % 100 == 0, 8),
    ];
    for (q, pred, candidates) in cases {
        let (found, models, index) = run(&store, q);
        assert_eq!(found, expect(pred), "{q}");
        assert_eq!(
            models, candidates as u64,
            "{q}: loaded {models} model records for {candidates} candidates"
        );
        // The index holds six entries per model (name, project, framework,
        // state, tag, metadata): 2,400. The widest driver above, project
        // p3, has 40 entries, then 40 point lookups of the tag.
        assert!(
            index <= 100,
            "{q}: read {index} index entries for {candidates} candidates"
        );
    }
    // The control: a query that no index answers reads every model, so the
    // counts above do tell an index lookup from a scan.
    let (found, models, _) = run(&store, "labels.cat = 1");
    assert_eq!(found, expect(&|i| i % 100 == 0));
    assert!(
        models >= MODELS as u64,
        "a scan loaded only {models} of {MODELS} model records"
    );
}
