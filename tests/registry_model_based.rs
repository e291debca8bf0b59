//! Model-based testing of the registry: random sequences of operations run
//! against a store and against a plain in-memory model (BTreeMaps) of what
//! the store should hold, including the errors each operation must give.
//! After every run the store's entities, links, queries, listings and
//! index are compared with the model.

use std::collections::{BTreeMap, BTreeSet};

use modelvault::detect::Framework;
use modelvault::query::{self, Value};
use modelvault::{
    Durability, EntityId, Error, FileEntry, IndexReport, NewExperiment, NewModel, Status, Store,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use crate::common::put;

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum MetaVal {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(u8),
}

impl MetaVal {
    fn value(&self) -> Value {
        match self {
            MetaVal::Int(i) => Value::Int(*i),
            MetaVal::Float(f) => Value::Float(*f),
            MetaVal::Bool(b) => Value::Bool(*b),
            MetaVal::Str(s) => Value::Str(["a", "b", "c"][*s as usize % 3].into()),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Does nothing: shrinking turns irrelevant operations into this.
    Nop,
    CreateExp {
        project: u8,
        name: u8,
        tags: u8,
    },
    StartExp {
        e: usize,
    },
    FinishExp {
        e: usize,
        status: u8,
    },
    CreateModel {
        name: u8,
        project: u8,
        exp: Option<usize>,
        tags: u8,
        fw: u8,
        meta: Vec<(u8, MetaVal)>,
    },
    AddVersion {
        m: usize,
        file: u8,
        exp: Option<usize>,
    },
    SetMeta {
        m: usize,
        key: u8,
        val: MetaVal,
    },
    RemoveMeta {
        m: usize,
        key: u8,
    },
    AddTag {
        m: usize,
        tag: u8,
    },
    RemoveTag {
        m: usize,
        tag: u8,
    },
    Alias {
        m: usize,
        alias: u8,
        version: u32,
        mv: bool,
    },
    RemoveAlias {
        m: usize,
        alias: u8,
    },
    Finalize {
        m: usize,
    },
    UseModel {
        e: usize,
        m: usize,
        version: u32,
    },
}

const PROJECTS: [&str; 2] = ["p0", "p1"];
const EXP_NAMES: [&str; 3] = ["train", "train-b", "eval"];
const MODEL_NAMES: [&str; 4] = ["alpha", "alpha-2", "beta", "gamma"];
const TAGS: [&str; 4] = ["t0", "t1", "t2", "t3"];
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
const ALIASES: [&str; 3] = ["champion", "staging", "a.b"];

fn meta_val() -> impl Strategy<Value = MetaVal> {
    prop_oneof![
        (-3i64..=3).prop_map(MetaVal::Int),
        prop::sample::select(vec![0.5f64, 3.0, -1.0, 2.5, 0.0]).prop_map(MetaVal::Float),
        any::<bool>().prop_map(MetaVal::Bool),
        any::<u8>().prop_map(MetaVal::Str),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let idx = || any::<usize>();
    let opt_idx = || prop::option::weighted(0.4, any::<usize>());
    prop_oneof![
        1 => Just(Op::Nop),
        2 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(project, name, tags)| Op::CreateExp { project, name, tags }),
        3 => idx().prop_map(|e| Op::StartExp { e }),
        1 => (idx(), 0u8..4).prop_map(|(e, status)| Op::FinishExp { e, status }),
        2 => (any::<u8>(), any::<u8>(), opt_idx(), any::<u8>(), 0u8..3,
              prop::collection::vec((0u8..4, meta_val()), 0..3))
            .prop_map(|(name, project, exp, tags, fw, meta)| Op::CreateModel { name, project, exp, tags, fw, meta }),
        8 => (idx(), 0u8..4, opt_idx()).prop_map(|(m, file, exp)| Op::AddVersion { m, file, exp }),
        5 => (idx(), 0u8..4, meta_val()).prop_map(|(m, key, val)| Op::SetMeta { m, key, val }),
        2 => (idx(), 0u8..4).prop_map(|(m, key)| Op::RemoveMeta { m, key }),
        3 => (idx(), 0u8..4).prop_map(|(m, tag)| Op::AddTag { m, tag }),
        2 => (idx(), 0u8..4).prop_map(|(m, tag)| Op::RemoveTag { m, tag }),
        5 => (idx(), 0u8..3, 0u32..4, any::<bool>())
            .prop_map(|(m, alias, version, mv)| Op::Alias { m, alias, version, mv }),
        1 => (idx(), 0u8..3).prop_map(|(m, alias)| Op::RemoveAlias { m, alias }),
        1 => idx().prop_map(|m| Op::Finalize { m }),
        5 => (idx(), idx(), 0u32..4).prop_map(|(e, m, version)| Op::UseModel { e, m, version }),
    ]
}

/// A run's operations; printed without the no-ops, with their positions.
#[derive(Clone)]
struct Ops(Vec<Op>);

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_map();
        for (i, op) in self.0.iter().enumerate() {
            if !matches!(op, Op::Nop) {
                l.entry(&i, op);
            }
        }
        l.finish()
    }
}

fn ops(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Ops> {
    prop::collection::vec(op(), len).prop_map(Ops)
}

// ---------------------------------------------------------------------------
// The in-memory model
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Immutable,
    NotFound,
    Exists,
    Invalid,
    Skipped,
}

fn outcome<T>(r: modelvault::Result<T>) -> (Outcome, Option<T>) {
    match r {
        Ok(v) => (Outcome::Ok, Some(v)),
        Err(Error::Immutable { .. }) => (Outcome::Immutable, None),
        Err(Error::NotFound { .. }) => (Outcome::NotFound, None),
        Err(Error::Exists { .. }) => (Outcome::Exists, None),
        Err(Error::InvalidInput { .. }) => (Outcome::Invalid, None),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[derive(Debug)]
struct MExp {
    id: EntityId,
    project: String,
    name: String,
    tags: Vec<String>,
    status: Status,
    inputs: Vec<(EntityId, u32)>,
}

#[derive(Debug)]
struct MModel {
    id: EntityId,
    name: String,
    project: String,
    framework: Framework,
    framework_set: bool,
    tags: BTreeSet<String>,
    metadata: BTreeMap<String, Value>,
    latest: u32,
    aliases: BTreeMap<String, u32>,
    experiment: Option<EntityId>,
    finalized: bool,
    version_exp: Vec<Option<EntityId>>,
}

#[derive(Default)]
struct World {
    exps: Vec<MExp>,
    models: Vec<MModel>,
    blobs: u64,
    counts: BTreeMap<(&'static str, Outcome), usize>,
}

fn tag_set(bits: u8) -> Vec<String> {
    (0..4)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| TAGS[b].to_string())
        .collect()
}

impl World {
    fn file(&mut self, store: &Store, kind: u8) -> (Vec<FileEntry>, Option<Framework>) {
        self.blobs += 1;
        let mk = |path: &str, data: Vec<u8>| FileEntry {
            path: path.into(),
            blob: put(store, &data),
            size: data.len() as u64,
        };
        match kind {
            0 => (
                vec![mk("w.dat", format!("plain {}", self.blobs).into_bytes())],
                None,
            ),
            1 => (
                vec![mk("model.safetensors", safetensors(self.blobs))],
                Some(Framework::Safetensors),
            ),
            2 => (
                vec![mk("model.gguf", gguf(self.blobs))],
                Some(Framework::Gguf),
            ),
            _ => (
                vec![
                    mk("model.gguf", gguf(self.blobs)),
                    mk("model.safetensors", safetensors(self.blobs)),
                ],
                Some(Framework::Safetensors),
            ),
        }
    }

    /// Runs one operation on the store and on the model; panics if they disagree.
    fn apply(&mut self, store: &Store, op: &Op) {
        let ne = self.exps.len();
        let nm = self.models.len();
        let (label, want, got): (&'static str, Outcome, Outcome) = match op.clone() {
            Op::Nop => return,
            Op::CreateExp {
                project,
                name,
                tags,
            } => {
                let project = PROJECTS[project as usize % 2].to_string();
                let name = EXP_NAMES[name as usize % 3].to_string();
                let tags = tag_set(tags);
                let (got, e) = outcome(
                    store.create_experiment(NewExperiment::new(&project, &name).tags(tags.clone())),
                );
                if let Some(e) = e {
                    self.exps.push(MExp {
                        id: e.id(),
                        project,
                        name,
                        tags,
                        status: Status::Created,
                        inputs: Vec::new(),
                    });
                }
                ("create_experiment", Outcome::Ok, got)
            }
            Op::StartExp { e } => {
                if ne == 0 {
                    return self.skip("start");
                }
                let x = &mut self.exps[e % ne];
                let want = if x.status.is_final() {
                    Outcome::Immutable
                } else if x.status != Status::Created {
                    Outcome::Invalid
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.experiment(x.id).unwrap().start());
                if got == Outcome::Ok {
                    x.status = Status::Running;
                }
                ("start", want, got)
            }
            Op::FinishExp { e, status } => {
                if ne == 0 {
                    return self.skip("finish");
                }
                let x = &mut self.exps[e % ne];
                let st = [
                    Status::Completed,
                    Status::Failed,
                    Status::Stopped,
                    Status::Running,
                ][status as usize];
                let want = if !st.is_final() {
                    Outcome::Invalid
                } else if x.status.is_final() {
                    Outcome::Immutable
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.experiment(x.id).unwrap().finish(st));
                if got == Outcome::Ok {
                    x.status = st;
                }
                ("finish", want, got)
            }
            Op::CreateModel {
                name,
                project,
                exp,
                tags,
                fw,
                meta,
            } => {
                let name = MODEL_NAMES[name as usize % 4].to_string();
                let project = PROJECTS[project as usize % 2].to_string();
                let tags = tag_set(tags);
                let fw = [None, Some(Framework::Pytorch), Some(Framework::Onnx)][fw as usize];
                let exp = if ne == 0 { None } else { exp.map(|e| e % ne) };
                let mut spec = NewModel::new(&name).project(&project).tags(tags.clone());
                if let Some(f) = fw {
                    spec = spec.framework(f);
                }
                let mut metadata = BTreeMap::new();
                for (k, v) in &meta {
                    let key = KEYS[*k as usize % 4];
                    spec = spec.metadata(key, v.value());
                    metadata.insert(key.to_string(), v.value());
                }
                let mut want = Outcome::Ok;
                if let Some(e) = exp {
                    spec = spec.experiment(self.exps[e].id);
                    if self.exps[e].status.is_final() {
                        want = Outcome::Immutable;
                    }
                }
                let (got, m) = outcome(store.create_model(spec));
                if let Some(m) = m {
                    self.models.push(MModel {
                        id: m.id(),
                        name,
                        project,
                        framework: fw.unwrap_or(Framework::Unknown),
                        framework_set: fw.is_some(),
                        tags: tags.into_iter().collect(),
                        metadata,
                        latest: 0,
                        aliases: BTreeMap::new(),
                        experiment: exp.map(|e| self.exps[e].id),
                        finalized: false,
                        version_exp: Vec::new(),
                    });
                }
                ("create_model", want, got)
            }
            Op::AddVersion { m, file, exp } => {
                if nm == 0 {
                    return self.skip("add_version");
                }
                let (files, guess) = self.file(store, file);
                let exp = if ne == 0 { None } else { exp.map(|e| e % ne) };
                let exp_id = exp.map(|e| self.exps[e].id);
                let exp_final = exp.is_some_and(|e| self.exps[e].status.is_final());
                let x = &mut self.models[m % nm];
                let want = if x.finalized || exp_final {
                    Outcome::Immutable
                } else {
                    Outcome::Ok
                };
                let model = store.model(x.id).unwrap();
                let (got, v) = outcome(model.add_version_by(files, exp_id));
                if let Some(v) = v {
                    x.latest += 1;
                    assert_eq!(v, x.latest, "version number");
                    x.version_exp.push(exp_id);
                    if let (false, Some(g)) = (x.framework_set, guess) {
                        x.framework = g;
                    }
                }
                ("add_version", want, got)
            }
            Op::SetMeta { m, key, val } => {
                if nm == 0 {
                    return self.skip("set_metadata");
                }
                let x = &mut self.models[m % nm];
                let key = KEYS[key as usize % 4];
                let want = if x.finalized {
                    Outcome::Immutable
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.model(x.id).unwrap().set_metadata(key, val.value()));
                if got == Outcome::Ok {
                    x.metadata.insert(key.to_string(), val.value());
                }
                ("set_metadata", want, got)
            }
            Op::RemoveMeta { m, key } => {
                if nm == 0 {
                    return self.skip("remove_metadata");
                }
                let x = &mut self.models[m % nm];
                let key = KEYS[key as usize % 4];
                let want = if x.finalized {
                    Outcome::Immutable
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.model(x.id).unwrap().remove_metadata(key));
                if got == Outcome::Ok {
                    x.metadata.remove(key);
                }
                ("remove_metadata", want, got)
            }
            Op::AddTag { m, tag } => {
                if nm == 0 {
                    return self.skip("add_tags");
                }
                let x = &mut self.models[m % nm];
                let tag = TAGS[tag as usize % 4];
                let want = if x.finalized {
                    Outcome::Immutable
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.model(x.id).unwrap().add_tags([tag]));
                if got == Outcome::Ok {
                    x.tags.insert(tag.to_string());
                }
                ("add_tags", want, got)
            }
            Op::RemoveTag { m, tag } => {
                if nm == 0 {
                    return self.skip("remove_tag");
                }
                let x = &mut self.models[m % nm];
                let tag = TAGS[tag as usize % 4];
                let want = if x.finalized {
                    Outcome::Immutable
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.model(x.id).unwrap().remove_tag(tag));
                if got == Outcome::Ok {
                    x.tags.remove(tag);
                }
                ("remove_tag", want, got)
            }
            Op::Alias {
                m,
                alias,
                version,
                mv,
            } => {
                if nm == 0 {
                    return self.skip("alias");
                }
                let x = &mut self.models[m % nm];
                let alias = ALIASES[alias as usize % 3];
                let want = if x.finalized {
                    Outcome::Immutable
                } else if version == 0 || version > x.latest {
                    Outcome::NotFound
                } else if !mv && x.aliases.contains_key(alias) {
                    Outcome::Exists
                } else {
                    Outcome::Ok
                };
                let model = store.model(x.id).unwrap();
                let r = if mv {
                    model.move_alias(alias, version)
                } else {
                    model.set_alias(alias, version)
                };
                let (got, _) = outcome(r);
                if got == Outcome::Ok {
                    x.aliases.insert(alias.to_string(), version);
                }
                (if mv { "move_alias" } else { "set_alias" }, want, got)
            }
            Op::RemoveAlias { m, alias } => {
                if nm == 0 {
                    return self.skip("remove_alias");
                }
                let x = &mut self.models[m % nm];
                let alias = ALIASES[alias as usize % 3];
                let want = if x.finalized {
                    Outcome::Immutable
                } else if !x.aliases.contains_key(alias) {
                    Outcome::NotFound
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.model(x.id).unwrap().remove_alias(alias));
                if got == Outcome::Ok {
                    x.aliases.remove(alias);
                }
                ("remove_alias", want, got)
            }
            Op::Finalize { m } => {
                if nm == 0 {
                    return self.skip("finalize");
                }
                let x = &mut self.models[m % nm];
                let want = if x.finalized {
                    Outcome::Immutable
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.model(x.id).unwrap().finalize());
                if got == Outcome::Ok {
                    x.finalized = true;
                }
                ("finalize", want, got)
            }
            Op::UseModel { e, m, version } => {
                if ne == 0 || nm == 0 {
                    return self.skip("use_model");
                }
                let model = &self.models[m % nm];
                let (mid, latest) = (model.id, model.latest);
                let x = &mut self.exps[e % ne];
                let want = if x.status.is_final() {
                    Outcome::Immutable
                } else if version == 0 || version > latest {
                    Outcome::NotFound
                } else {
                    Outcome::Ok
                };
                let (got, _) = outcome(store.experiment(x.id).unwrap().use_model(mid, version));
                if got == Outcome::Ok && !x.inputs.contains(&(mid, version)) {
                    x.inputs.push((mid, version));
                }
                ("use_model", want, got)
            }
        };
        assert_eq!(got, want, "{label}: {op:?}");
        *self.counts.entry((label, got)).or_default() += 1;
    }

    fn skip(&mut self, label: &'static str) {
        *self.counts.entry((label, Outcome::Skipped)).or_default() += 1;
    }

    /// Compares everything the store reports with the model.
    fn check(&self, store: &Store) {
        // Models: listing, records, versions, links.
        let listed = store.models().unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|s| (s.id, s.name.clone(), s.latest))
                .collect::<Vec<_>>(),
            self.models
                .iter()
                .map(|m| (m.id, m.name.clone(), m.latest))
                .collect::<Vec<_>>(),
            "models()"
        );
        for m in &self.models {
            let h = store.model(m.id).unwrap();
            let info = h.info().unwrap();
            let ctx = format!("model {} ({})", m.name, m.id);
            assert_eq!(info.name, m.name, "{ctx}");
            assert_eq!(info.project, m.project, "{ctx}");
            assert_eq!(
                info.tags,
                m.tags.iter().cloned().collect::<Vec<_>>(),
                "{ctx}: tags"
            );
            assert_eq!(info.metadata, m.metadata, "{ctx}: metadata");
            assert_eq!(info.latest, m.latest, "{ctx}: latest");
            assert_eq!(info.aliases, m.aliases, "{ctx}: aliases");
            assert_eq!(info.experiment, m.experiment, "{ctx}: experiment");
            assert_eq!(info.finalized_ms.is_some(), m.finalized, "{ctx}: finalized");
            assert_eq!(info.framework, m.framework, "{ctx}: framework");
            assert_eq!(
                h.versions().unwrap(),
                (1..=m.latest).collect::<Vec<_>>(),
                "{ctx}"
            );
            for (i, e) in m.version_exp.iter().enumerate() {
                let v = h.version(Some(i as u32 + 1)).unwrap();
                assert_eq!(v.experiment, *e, "{ctx}: version {}", i + 1);
            }
            if m.latest == 0 {
                assert!(h.version(None).err().unwrap().is_not_found());
            } else {
                assert_eq!(h.version(None).unwrap().version, m.latest);
            }
            let mut used: Vec<(EntityId, u32)> = self
                .exps
                .iter()
                .flat_map(|e| {
                    e.inputs
                        .iter()
                        .filter(|(mm, _)| *mm == m.id)
                        .map(move |(_, v)| (e.id, *v))
                })
                .collect();
            used.sort();
            assert_eq!(h.used_by().unwrap(), used, "{ctx}: used_by");
            for (alias, v) in &m.aliases {
                let (r, rv) = store.resolve_model(&format!("{}@{alias}", m.id)).unwrap();
                assert_eq!((r.id(), rv), (m.id, Some(*v)), "{ctx}: alias {alias}");
            }
        }
        for name in MODEL_NAMES {
            match self.models.iter().rev().find(|m| m.name == name) {
                Some(m) => assert_eq!(store.model_by_name(name).unwrap().id(), m.id, "{name}"),
                None => assert!(store.model_by_name(name).err().unwrap().is_not_found()),
            }
        }

        // Experiments: records and links.
        for e in &self.exps {
            let info = store.experiment(e.id).unwrap().info().unwrap();
            assert_eq!(info.status, e.status, "experiment {}", e.id);
            assert_eq!(info.tags, e.tags, "experiment {}", e.id);
            assert_eq!(info.input_models, e.inputs, "experiment {}: inputs", e.id);
            let created: Vec<EntityId> = self
                .models
                .iter()
                .filter(|m| m.experiment == Some(e.id))
                .map(|m| m.id)
                .collect();
            assert_eq!(info.created_models, created, "experiment {}: created", e.id);
        }

        // Model queries against the model.
        type P = Box<dyn Fn(&MModel) -> bool>;
        fn num(v: Option<&Value>) -> Option<f64> {
            match v {
                Some(Value::Int(i)) => Some(*i as f64),
                Some(Value::Float(f)) => Some(*f),
                _ => None,
            }
        }
        let k = |m: &MModel, key: &str| num(m.metadata.get(key));
        let cases: Vec<(&str, P)> = vec![
            ("tag = t1", Box::new(|m: &MModel| m.tags.contains("t1"))),
            (
                "tag IN (t0, t2)",
                Box::new(|m: &MModel| m.tags.contains("t0") || m.tags.contains("t2")),
            ),
            ("status = finalized", Box::new(|m: &MModel| m.finalized)),
            (
                "status = draft AND tag = t3",
                Box::new(|m: &MModel| !m.finalized && m.tags.contains("t3")),
            ),
            (
                "metadata.k0 = 3",
                Box::new(move |m: &MModel| k(m, "k0") == Some(3.0)),
            ),
            (
                "metadata.k1 > 0",
                Box::new(move |m: &MModel| k(m, "k1").is_some_and(|x| x > 0.0)),
            ),
            (
                "metadata.k0 <= 1.0 AND project = p1",
                Box::new(move |m: &MModel| {
                    k(m, "k0").is_some_and(|x| x <= 1.0) && m.project == "p1"
                }),
            ),
            (
                "metadata.k2 = true",
                Box::new(|m: &MModel| m.metadata.get("k2") == Some(&Value::Bool(true))),
            ),
            (
                "metadata.k3 = a",
                Box::new(|m: &MModel| m.metadata.get("k3") == Some(&Value::Str("a".into()))),
            ),
            (
                "metadata.k3 >= b",
                Box::new(
                    |m: &MModel| matches!(m.metadata.get("k3"), Some(Value::Str(s)) if s.as_str() >= "b"),
                ),
            ),
            (
                "framework = gguf",
                Box::new(|m: &MModel| m.framework == Framework::Gguf),
            ),
            (
                "framework = safetensors",
                Box::new(|m: &MModel| m.framework == Framework::Safetensors),
            ),
            (
                "framework IN (pytorch, unknown)",
                Box::new(|m: &MModel| {
                    matches!(m.framework, Framework::Pytorch | Framework::Unknown)
                }),
            ),
            (
                "name ~ alpha",
                Box::new(|m: &MModel| m.name.starts_with("alpha")),
            ),
            (
                "name = alpha AND project = p0",
                Box::new(|m: &MModel| m.name == "alpha" && m.project == "p0"),
            ),
            (
                "NOT metadata.k1 >= 0",
                Box::new(move |m: &MModel| !k(m, "k1").is_some_and(|x| x >= 0.0)),
            ),
            (
                "latest >= 2 OR tag = t0",
                Box::new(|m: &MModel| m.latest >= 2 || m.tags.contains("t0")),
            ),
            (
                "metadata.k1 < 2.5 AND metadata.k1 > -2",
                Box::new(move |m: &MModel| k(m, "k1").is_some_and(|x| x < 2.5 && x > -2.0)),
            ),
            (
                "metadata.k0 = 0.5 AND tag = t2 AND status = draft",
                Box::new(move |m: &MModel| {
                    k(m, "k0") == Some(0.5) && m.tags.contains("t2") && !m.finalized
                }),
            ),
        ];
        for (text, pred) in &cases {
            let mut got: Vec<EntityId> = store
                .find_models(&query::parse(text).unwrap())
                .unwrap()
                .iter()
                .map(|i| i.id)
                .collect();
            got.sort();
            let want: Vec<EntityId> = self
                .models
                .iter()
                .filter(|m| pred(m))
                .map(|m| m.id)
                .collect();
            assert_eq!(got, want, "find_models({text})");
        }

        // Experiment listings against the model, whole and in pages.
        type F = Box<dyn Fn(&MExp) -> bool>;
        type Q = Box<dyn Fn() -> modelvault::ExperimentQuery>;
        let statuses = [
            Status::Created,
            Status::Running,
            Status::Completed,
            Status::Failed,
            Status::Stopped,
        ];
        let mut filters: Vec<(String, Q, F)> = Vec::new();
        for st in statuses {
            let s = store.clone();
            filters.push((
                format!("status {}", st.name()),
                Box::new(move || s.experiments().status(st)),
                Box::new(move |e: &MExp| e.status == st),
            ));
        }
        for p in PROJECTS {
            let s = store.clone();
            filters.push((
                format!("project {p}"),
                Box::new(move || s.experiments().project(p)),
                Box::new(move |e: &MExp| e.project == p),
            ));
        }
        for t in TAGS {
            let s = store.clone();
            filters.push((
                format!("tag {t} + running"),
                Box::new(move || s.experiments().tag(t).status(Status::Running)),
                Box::new(move |e: &MExp| {
                    e.tags.iter().any(|x| x == t) && e.status == Status::Running
                }),
            ));
        }
        let s = store.clone();
        filters.push((
            "prefix train + p1".into(),
            Box::new(move || s.experiments().name_prefix("train").project("p1")),
            Box::new(|e: &MExp| e.name.starts_with("train") && e.project == "p1"),
        ));
        let s = store.clone();
        filters.push((
            "all".into(),
            Box::new(move || s.experiments()),
            Box::new(|_: &MExp| true),
        ));
        for (label, q, f) in &filters {
            let want: Vec<EntityId> = self.exps.iter().filter(|e| f(e)).map(|e| e.id).collect();
            let full: Vec<EntityId> = q()
                .limit(100_000)
                .run()
                .unwrap()
                .iter()
                .map(|i| i.id)
                .collect();
            assert_eq!(full, want, "experiments: {label}");
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let mut qq = q().limit(4);
                if let Some(a) = after {
                    qq = qq.after(a);
                }
                let page = qq.run().unwrap();
                assert!(page.len() <= 4);
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                paged.extend(page.iter().map(|i| i.id));
                assert!(
                    paged.len() <= want.len(),
                    "experiments: {label}: pages run past the end"
                );
            }
            assert_eq!(paged, want, "experiments paged: {label}");
        }

        let report = store.verify_index().unwrap();
        assert!(report.is_clean(), "index: {report:?}");
    }
}

fn safetensors(n: u64) -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&(n as f32).to_le_bytes());
    v
}

fn gguf(n: u64) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&n.to_le_bytes());
    v
}

fn fast_store(dir: &std::path::Path) -> Store {
    Store::options()
        .durability(Durability::Eventual)
        .open(dir.join("vault"))
        .unwrap()
}

/// Runs `ops` on a fresh store, checking the model part-way and at the end.
fn run_case(ops: &[Op]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path());
    let mut world = World::default();
    for (i, op) in ops.iter().enumerate() {
        world.apply(&store, op);
        if i % 150 == 149 {
            world.check(&store);
        }
    }
    world.check(&store);
    world
}

fn config(cases: u32) -> Config {
    let mut c = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    // Reproducible by default; PROPTEST_RNG_SEED picks another seed.
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x6d6f_6465_6c76);
    }
    c
}

#[test]
fn registry_matches_in_memory_model() {
    let mut runner = TestRunner::new(config(10));
    let total = std::sync::atomic::AtomicUsize::new(0);
    let counts = std::sync::Mutex::new(BTreeMap::<(&'static str, Outcome), usize>::new());
    let result = runner.run(&ops(300..=420), |Ops(ops)| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(&ops)));
        match r {
            Ok(world) => {
                total.fetch_add(ops.len(), std::sync::atomic::Ordering::Relaxed);
                let mut c = counts.lock().unwrap();
                for (k, v) in world.counts {
                    *c.entry(k).or_default() += v;
                }
                Ok(())
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(TestCaseError::fail(msg))
            }
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let total = total.into_inner();
    assert!(total >= 3000, "only {total} operations ran");
    // Every kind of operation ran, and the interesting error paths were hit.
    let c = counts.into_inner().unwrap();
    for label in [
        "create_experiment",
        "start",
        "finish",
        "create_model",
        "add_version",
        "set_metadata",
        "remove_metadata",
        "add_tags",
        "remove_tag",
        "set_alias",
        "move_alias",
        "remove_alias",
        "finalize",
        "use_model",
    ] {
        assert!(
            c.get(&(label, Outcome::Ok)).copied().unwrap_or(0) > 0,
            "{label} never succeeded: {c:?}"
        );
    }
    for key in [
        ("add_version", Outcome::Immutable),
        ("set_metadata", Outcome::Immutable),
        ("set_alias", Outcome::Exists),
        ("set_alias", Outcome::NotFound),
        ("use_model", Outcome::Immutable),
        ("use_model", Outcome::NotFound),
        ("create_model", Outcome::Immutable),
        ("start", Outcome::Invalid),
        ("finish", Outcome::Immutable),
        ("finalize", Outcome::Immutable),
        ("remove_alias", Outcome::NotFound),
    ] {
        assert!(
            c.get(&key).copied().unwrap_or(0) > 0,
            "{key:?} never happened: {c:?}"
        );
    }
}

/// The model survives a reopen exactly (a shorter random run, then reopen).
#[test]
fn registry_model_survives_reopen() {
    let mut runner = TestRunner::new(config(2));
    let result = runner.run(&ops(200..=250), |Ops(ops)| {
        let dir = tempfile::tempdir().unwrap();
        let mut world = World::default();
        {
            let store = fast_store(dir.path());
            for op in &ops {
                world.apply(&store, op);
            }
            store.sync().unwrap();
        }
        let store = Store::open(dir.path().join("vault")).unwrap();
        world.check(&store);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// There is no public way to damage the index, so on a clean store:
/// `rebuild_index` reports nothing, changes nothing, and leaves it clean.
#[test]
fn rebuild_index_on_a_clean_store_reports_nothing() {
    let mut runner = TestRunner::new(config(1));
    let tree = ops(300..=300).new_tree(&mut runner).unwrap();
    let Ops(ops) = tree.current();
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path());
    let mut world = World::default();
    for op in &ops {
        world.apply(&store, op);
    }
    assert!(world.models.len() >= 5 && world.exps.len() >= 5);
    let before = store.verify_index().unwrap();
    assert_eq!(before, IndexReport::default());
    let report = store.rebuild_index().unwrap();
    assert_eq!(report, IndexReport::default());
    assert!(report.is_clean());
    world.check(&store);
    // Twice is the same.
    assert_eq!(store.rebuild_index().unwrap(), IndexReport::default());
}

/// Damage made behind the store's back (straight into RocksDB while it is
/// closed) is reported by `verify_index` and repaired by `rebuild_index`.
#[test]
fn verify_index_reports_damage_and_rebuild_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let (m_id, e_id) = {
        let store = Store::create(&path).unwrap();
        let e = store
            .create_experiment(NewExperiment::new("p", "run").tags(["x"]))
            .unwrap();
        let m = store
            .create_model(
                NewModel::new("damaged")
                    .experiment(e.id())
                    .tags(["only-tag"])
                    .metadata("acc", Value::Float(0.75)),
            )
            .unwrap();
        (m.id(), e.id())
    };
    // The index entries as they are before the damage.
    let meta_dir = path.join("meta");
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, &meta_dir).unwrap();
    assert!(cfs.iter().any(|c| c == "index"), "{cfs:?}");
    let (removed, bogus) = {
        let db = rocksdb::DB::open_cf(&opts, &meta_dir, &cfs).unwrap();
        let cf = db.cf_handle("index").unwrap();
        // Remove every index entry that ends with the model id and mentions the tag.
        let mut removed = Vec::new();
        for kv in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, _) = kv.unwrap();
            let has_tag = k.windows(8).any(|w| w == b"only-tag");
            if k.ends_with(&m_id.0) && has_tag {
                removed.push(k.to_vec());
            }
        }
        assert_eq!(removed.len(), 1, "one tag entry for the model");
        for k in &removed {
            db.delete_cf(cf, k).unwrap();
        }
        let bogus = [&[0x0Au8][..], b"ghost\0", &e_id.0].concat();
        db.put_cf(cf, &bogus, b"").unwrap();
        db.flush_cf(cf).unwrap();
        (removed, bogus)
    };
    let store = Store::open(&path).unwrap();
    let report = store.verify_index().unwrap();
    assert!(!report.is_clean());
    assert_eq!(
        report.missing,
        removed.iter().map(hex::encode).collect::<Vec<_>>()
    );
    assert_eq!(report.extra, vec![hex::encode(&bogus)]);
    // The damage is visible through queries answered from the index.
    let q = query::parse("tag = 'only-tag'").unwrap();
    assert!(store.find_models(&q).unwrap().is_empty());
    // Rebuild reports the same and repairs it.
    assert_eq!(store.rebuild_index().unwrap(), report);
    assert!(store.verify_index().unwrap().is_clean());
    let found: Vec<EntityId> = store
        .find_models(&q)
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(found, vec![m_id]);
    assert!(store
        .find_models(&query::parse("tag = ghost").unwrap())
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .experiment(e_id)
            .unwrap()
            .info()
            .unwrap()
            .created_models,
        vec![m_id]
    );
}
