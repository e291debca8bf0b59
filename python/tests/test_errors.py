"""Bad input raises the documented exceptions, carrying the engine's
evidence, changes nothing, and never crashes the interpreter."""

import os
import subprocess
import sys

import pytest

import modelvault


def test_hierarchy():
    for cls in (modelvault.NotFound, modelvault.Immutable, modelvault.Locked,
                modelvault.IntegrityError, modelvault.InvalidInput, modelvault.ReadOnly,
                modelvault.AlreadyExists):
        assert issubclass(cls, modelvault.Error)
    assert issubclass(modelvault.Error, Exception)


def test_wrong_types(store, tmp_path):
    exp = store.create_experiment("p", "e")
    with pytest.raises(TypeError):
        store.create_experiment(1, "e")
    with pytest.raises(TypeError):
        store.create_experiment("p", "e", tags="not-a-list")
    with pytest.raises(TypeError):
        store.query_models(42)
    with pytest.raises(TypeError):
        exp.set_progress("50")
    with pytest.raises(TypeError):
        exp.set_progress(50.0)
    with pytest.raises(TypeError, match="must be int, float, bool, str"):
        exp.connect({"obj": object()})
    with pytest.raises(TypeError, match="must be int, float, bool, str"):
        exp.connect({"none": None})
    with pytest.raises(TypeError):
        exp.set_parameters(["not", "a", "dict"])
    with pytest.raises(TypeError):
        exp.log(b"bytes")
    with pytest.raises(TypeError):
        store.record_model("m", 42)
    with pytest.raises(TypeError):
        modelvault.open(3.5)
    with pytest.raises(TypeError):
        store.get_model()
    with pytest.raises(TypeError):
        store.get_model(5)
    with pytest.raises(TypeError):
        exp.report_scalar("loss", "train", "high", 1)
    assert exp.get_parameters() == {} and exp.info()["console_lines"] == 0


def test_invalid_values(store, tmp_path):
    exp = store.create_experiment("p", "e")
    for bad in (-1, 101, 1000):
        with pytest.raises(modelvault.InvalidInput, match=f"progress {bad}"):
            exp.set_progress(bad)
    assert exp.get_progress() == 0
    with pytest.raises(modelvault.InvalidInput, match="hyperparameter"):
        exp.connect({"bad key!": 1})
    with pytest.raises(modelvault.InvalidInput, match="stdout or stderr"):
        exp.log("x", stream="stdlog")
    with pytest.raises(modelvault.InvalidInput, match="out of the 64-bit range"):
        exp.connect({"big": 1 << 70})
    with pytest.raises(modelvault.InvalidInput):
        store.create_experiment("", "e")
    (tmp_path / "f.bin").write_bytes(b"123")
    with pytest.raises(modelvault.InvalidInput, match="framework"):
        store.record_model("m2", tmp_path / "f.bin", framework="cobol")
    with pytest.raises(modelvault.InvalidInput):
        store.record_model("bad/name?", tmp_path / "f.bin")
    with pytest.raises(modelvault.InvalidInput):
        store.get_experiments(status="sleeping")
    with pytest.raises(modelvault.InvalidInput):
        store.prune(dry_run=True)  # no rule
    with pytest.raises(modelvault.InvalidInput):
        store.open_blob("not-hex")
    assert store.models() == []


def test_malformed_queries(store, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"123")
    store.record_model("m", tmp_path / "f.bin", metadata={"accuracy": 0.5})
    for q in ("metadata.accuracy >", "AND", "framework = ", "(name = m", "name == = m", "name = 'open"):
        with pytest.raises(modelvault.InvalidInput) as e:
            store.query_models(q)
        assert str(e.value).startswith("bad query at byte")
    with pytest.raises(modelvault.InvalidInput, match="at byte 0:"):
        store.query_models("AND")
    assert [m.name for m in store.query_models("metadata.accuracy < 0.9")] == ["m"]


def test_missing_things(store, tmp_path):
    with pytest.raises(modelvault.NotFound, match="missing"):
        store.record_model("m", tmp_path / "missing")
    with pytest.raises(modelvault.NotFound, match="model not found"):
        store.get_model("nope")
    with pytest.raises(modelvault.NotFound):
        store.get_model(id="01900000-0000-7000-8000-000000000000")
    with pytest.raises(modelvault.NotFound):
        store.get_experiment(project="p", name="none")
    with pytest.raises(modelvault.InvalidInput):
        store.get_experiment("not-a-uuid")
    with pytest.raises(modelvault.NotFound):
        store.open_blob("00" * 32)
    exp = store.create_experiment("p", "e")
    with pytest.raises(modelvault.NotFound):
        exp.upload_artifact("a", tmp_path / "missing.bin")
    with pytest.raises(modelvault.NotFound):
        exp.get_artifact("nothing")
    (tmp_path / "f.bin").write_bytes(b"123")
    m = store.record_model("m", tmp_path / "f.bin")
    with pytest.raises(modelvault.NotFound, match="other.bin"):
        m.open("other.bin")
    with pytest.raises(modelvault.NotFound):
        m.at(7)
    with pytest.raises(modelvault.NotFound):
        store.get_model("m", alias="nosuchalias")
    with pytest.raises(modelvault.NotFound):
        store.get_object("nobucket", "k", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_finalized_and_finished(store, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"123")
    m = store.record_model("m", tmp_path / "f.bin", tags=["a"])
    m.finalize()
    for change in (lambda: m.set_metadata("k", 1), lambda: m.add_tags(["b"]),
                   lambda: m.remove_tag("a"), lambda: m.set_labels({"x": 1}),
                   lambda: m.add_version(tmp_path / "f.bin"), lambda: m.finalize()):
        with pytest.raises(modelvault.Immutable, match="finalized"):
            change()
    assert m.tags == ["a"] and m.metadata == {} and m.versions() == [1]
    with pytest.raises(modelvault.Immutable, match="force"):
        m.delete_version(1, dry_run=False)
    exp = store.init_experiment("p", "done")
    exp.mark_completed()
    with pytest.raises(modelvault.Immutable, match="completed"):
        exp.set_progress(10)
    with pytest.raises(modelvault.Immutable):
        exp.connect({"lr": 1})
    with pytest.raises(modelvault.Immutable):
        store.record_model("late", tmp_path / "f.bin", experiment=exp)
    assert exp.get_parameters() == {}
    with pytest.raises(modelvault.Immutable):
        exp.start()


def test_alias_taken(store, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"123")
    m = store.record_model("m", tmp_path / "f.bin")
    m.set_alias("prod", 1)
    with pytest.raises(modelvault.AlreadyExists):
        m.set_alias("prod", 1)


def test_locked_by_other_process(store):
    code = (
        "import modelvault, sys\n"
        "try:\n"
        "    modelvault.open(sys.argv[1])\n"
        "except modelvault.Locked as e:\n"
        "    print('LOCKED', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, store.path], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("LOCKED") and store.path in r.stdout and "locked" in r.stdout
    # In this process the same directory gives the same handle, not Locked.
    again = modelvault.open(store.path)
    assert again._n is store._n


def test_corruption_is_integrity_error(tmp_path):
    path = tmp_path / "vault"
    s = modelvault.open(path)
    data = os.urandom(300000)
    blob = s.put_blob(data)
    s._n.sync()
    del s
    import gc

    gc.collect()
    packs = sorted((path / "packs").rglob("*"))
    pack = [p for p in packs if p.is_file() and p.stat().st_size > 200000][0]
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))
    s = modelvault.open(path)
    with pytest.raises(modelvault.IntegrityError, match="checksum mismatch|corrupt"):
        with s.open_blob(blob) as f:
            f.read()
    rep = s.verify()
    assert rep["problems"]
