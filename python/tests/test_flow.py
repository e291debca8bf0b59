"""The seed's flow end to end: an experiment with parameters, console,
scalars, progress and artifacts creates a model from a folder, a new
version, metadata and tags, finalizes it, and the model is found again by
name, alias, URL, query and lineage."""

import io
import json
import sys

import numpy as np
import pytest

import modelvault


def test_experiment_to_model_flow(store, checkpoint, tmp_path):
    folder, files, _ = checkpoint
    exp = store.create_experiment("vision", "resnet-ft", tags=["gpu", "baseline"], type="training")
    assert exp.status == "created"
    assert exp.project == "vision" and exp.name == "resnet-ft"
    assert exp.tags == ["baseline", "gpu"]  # kept sorted and exp.type == "training"

    with exp:
        assert exp.status == "running"
        env = exp.info()["environment"]
        assert sys.version.split()[0] in env["interpreter"]
        assert env["packages"]["numpy"] == np.__version__
        assert "safetensors" in env["packages"]
        run = exp.info()["run"]
        assert run["host"] and run["command"] == sys.argv

        params = exp.connect({"lr": 0.001, "epochs": 3, "nesterov": True,
                              "opt": {"betas": [0.9, 0.999], "name": "adam"}})
        assert params["lr"] == 0.001
        exp.set_parameters({"batch": 64}, section="Data")
        assert exp.get_parameters() == {
            "General": {"lr": 0.001, "epochs": 3, "nesterov": True,
                        "opt": {"betas": [0.9, 0.999], "name": "adam"}},
            "Data": {"batch": 64},
        }
        assert exp.get_parameters_flat()["General/opt/name"] == "adam"

        exp.log("epoch 1 starting\nwarmup done")
        exp.log("a warning", stream="stderr")
        with exp.capture_console():
            print("captured line one")
            print("captured", "line", 2, file=sys.stderr)
            sys.stdout.write("partial")
        lines = exp.console()
        assert [(l["seq"], l["stream"], l["text"]) for l in lines] == [
            (0, "stdout", "epoch 1 starting"),
            (1, "stdout", "warmup done"),
            (2, "stderr", "a warning"),
            (3, "stdout", "captured line one"),
            (4, "stderr", "captured line 2"),
            (5, "stdout", "partial"),
        ]
        assert [l["text"] for l in exp.console_tail(2)] == ["captured line 2", "partial"]
        assert exp.info()["console_lines"] == 6

        for i in range(5):
            exp.report_scalar("loss", "train", 1.0 / (i + 1), iteration=i)
            exp.set_progress(20 * i)
        exp.report_scalars([("loss", "val", 0.9, 0), ("loss", "val", 0.45, 4), ("acc", "val", 0.93, 4)])
        sc = exp.get_scalars("loss")
        assert sc["train"] == [(i, 1.0 / (i + 1)) for i in range(5)]
        assert sc["val"] == [(0, 0.9), (4, 0.45)]
        assert exp.get_scalars("acc") == {"val": [(4, 0.93)]}
        assert exp.get_progress() == 80

        (tmp_path / "notes.txt").write_bytes(b"first notes")
        assert exp.upload_artifact("notes", tmp_path / "notes.txt", {"kind": "text"}) == 1
        assert exp.upload_artifact("notes", b"second notes") == 2
        assert exp.upload_artifact("summary", {"best": 0.93, "epoch": 4}) == 1
        assert exp.upload_artifact("best_epoch", 4) == 1
        arts = exp.artifacts
        assert sorted(arts) == ["best_epoch", "notes", "summary"]
        assert arts["notes"].revision == 2 and arts["notes"].get() == b"second notes"
        first = exp.get_artifact("notes", revision=1)
        assert first.read() == b"first notes" and first.metadata == {"kind": "text"}
        assert first.size == len(b"first notes")
        assert arts["summary"].get() == {"best": 0.93, "epoch": 4}
        assert arts["best_epoch"].get() == 4 and arts["best_epoch"].blob is None

        model = store.record_model(
            "resnet", folder, experiment=exp, tags=["cv"],
            metadata={"accuracy": 0.91, "dataset": "imagenet"}, labels={"cat": 0, "dog": 1},
            comment="first cut",
        )
        assert model.version == 1
        v2_folder = tmp_path / "ckpt2"
        v2_folder.mkdir()
        arr = np.frombuffer(files["sub/extra.npy"][128:], dtype=np.float32).copy()
        arr[::97] += 1.0
        np.save(v2_folder / "extra.npy", arr)
        (v2_folder / "config.json").write_text('{"hidden": 128, "layers": 3}')
        v2 = model.add_version(v2_folder, experiment=exp)
        assert v2.version == 2 and v2.id == model.id
        assert model.versions() == [1, 2]

    assert exp.status == "completed" and exp.get_progress() == 100

    # Files of version 1 read back identical; formats and framework detected.
    v1 = store.get_model("resnet", version=1)
    by_path = {f["path"]: f for f in v1.files()}
    assert set(by_path) == set(files)
    for path, data in files.items():
        with v1.open(path) as f:
            assert f.read() == data
        assert by_path[path]["size"] == len(data)
    assert by_path["model.safetensors"]["format"] == "safetensors"
    assert by_path["config.json"]["format"] == "json"
    assert v1.framework == "safetensors"

    # Metadata, tags, labels, aliases.
    model.set_metadata("accuracy", 0.95)
    model.update_metadata({"params_m": 25, "stages": [3, 4, 6, 3]})
    model.add_tags(["production-candidate"])
    model.set_alias("champion", 2)
    info = model.info()
    assert info["metadata"] == {"accuracy": 0.95, "dataset": "imagenet", "params_m": 25,
                                "stages": [3, 4, 6, 3]}
    assert info["tags"] == ["cv", "production-candidate"]
    assert info["labels"] == {"cat": 0, "dog": 1}
    assert info["aliases"] == {"champion": 2}
    assert info["comment"] == "first cut"
    assert model.get_metadata("dataset") == "imagenet"

    # Get by id, name, alias, URL; the URL names the version.
    assert store.get_model(id=model.id).id == model.id
    assert store.get_model("resnet").version == 2
    champ = store.get_model("resnet", alias="champion")
    assert champ.version == 2
    assert store.get_model("resnet@champion").version == 2
    url1 = v1.url
    assert url1 == f"modelvault://{store.id}/models/{model.id}@1"
    by_url = store.get_model(url=url1)
    assert by_url.id == model.id and by_url.version == 1
    with champ.open("config.json") as f:
        assert json.load(f) == {"hidden": 128, "layers": 3}

    # Finalize: every change is refused afterwards.
    model.finalize()
    assert model.published
    with pytest.raises(modelvault.Immutable, match="finalized"):
        model.set_metadata("accuracy", 0.5)
    with pytest.raises(modelvault.Immutable):
        model.add_version(v2_folder)
    assert model.metadata["accuracy"] == 0.95

    # Query.
    other = store.record_model("tiny", v2_folder / "config.json", framework="pytorch",
                               metadata={"accuracy": 0.97})
    store.record_model("weak", v2_folder / "config.json", framework="pytorch",
                       metadata={"accuracy": 0.5})
    hits = store.query_models("metadata.accuracy > 0.9 AND framework = pytorch")
    assert [m.id for m in hits] == [other.id]
    assert [m.id for m in store.query_models("metadata.accuracy > 0.9")] == sorted(
        [model.id, other.id], key=lambda i: [m.id for m in store.models()].index(i))
    assert [m.id for m in store.query_models(tags=["cv"])] == [model.id]
    assert [m.name for m in store.query_models(project="default", framework="pytorch")] == [
        "tiny", "weak"]

    # Lineage: the experiment created resnet; another experiment used it.
    assert [m.id for m in exp.created_models()] == [model.id]
    assert model.experiment == exp
    user = store.init_experiment("vision", "eval")
    user.use_model(champ)
    assert [(m.id, m.version) for m in user.input_models()] == [(model.id, 2)]
    assert [(e.id, v) for e, v in model.used_by()] == [(user.id, 2)]
    user.mark_failed()
    assert user.status == "failed"

    # Experiments by id, project+name, filters.
    assert store.get_experiment(exp.id) == exp
    assert store.get_experiment(project="vision", name="resnet-ft") == exp
    assert store.get_experiments(project="vision") == [exp, user]
    assert store.get_experiments(status="failed") == [user]
    assert store.get_experiments(tag="gpu") == [exp]
    assert store.get_experiments(name_prefix="ev") == [user]

    # The dedup figures count both versions; version 2 shares version 1's files.
    st = store.stats()
    assert st["versions"] == 4 and st["logical_bytes"] > st["unique_bytes"]


def test_external_model_and_local_copy(store, checkpoint, tmp_path):
    folder, files, _ = checkpoint
    ext = store.register_external_model("hf-bert", "https://example.com/bert.bin",
                                        checksum="sha256:00ff", framework="pytorch")
    assert ext.url == "https://example.com/bert.bin"
    assert ext.info()["external"] == {"url": "https://example.com/bert.bin", "checksum": "sha256:00ff"}
    again = store.register_external_model("hf-bert", "https://example.com/bert.bin")
    assert again.id == ext.id
    m = store.record_model("local", folder)
    out = m.get_local_copy(tmp_path / "restored")
    for path, data in files.items():
        assert (tmp_path / "restored" / path).read_bytes() == data


def test_maintenance(store, checkpoint, tmp_path):
    folder, files, _ = checkpoint
    m = store.record_model("m", folder)
    for i in range(3):
        (tmp_path / f"c{i}.json").write_text(json.dumps({"step": i}))
        m.add_version(tmp_path / f"c{i}.json")
    assert m.versions() == [1, 2, 3, 4]
    rep = store.verify()
    assert rep["problems"] == [] and rep["versions"] == 4 and rep["chunks_read"] > 0
    dry = store.prune(keep_last=2, dry_run=True)
    assert dry["dry_run"] and sorted(v for _, v in dry["versions"]) == [1, 2]
    assert m.versions() == [1, 2, 3, 4]
    real = store.prune(keep_last=2, dry_run=False, model="m")
    assert not real["dry_run"] and sorted(v for _, v in real["versions"]) == [1, 2]
    # The dry run's figures are the real run's (one model, the same rule).
    assert real["bytes_freed"] == dry["bytes_freed"] > 0
    assert real["blobs_freed"] == dry["blobs_freed"] == len(files) + 1
    assert m.versions() == [3, 4]
    g = store.gc(compact_below=0.99)
    assert g["chunks_deleted"] > 0 and g["chunk_bytes_deleted"] > 0
    assert store.verify()["problems"] == []
    dm = store.delete_model("m", dry_run=True)
    assert dm["models"] == [m.id]
    assert store.get_model("m").versions() == [3, 4]
    store.delete_model("m", dry_run=False)
    with pytest.raises(modelvault.NotFound):
        store.get_model("m")


def test_models_sharing_a_name(store, tmp_path):
    (tmp_path / "a.bin").write_bytes(b"a" * 1000)
    (tmp_path / "b.bin").write_bytes(b"b" * 1000)
    first = store.record_model("dup", tmp_path / "a.bin")
    # A second model of the same name (as the engine allows): the name now
    # resolves to it, but the first keeps its own versions.
    second = store._n.create_model("dup")
    assert store.get_model("dup").id == second.id != first.id
    v2 = first.add_version(tmp_path / "b.bin")
    assert v2.id == first.id and v2.version == 2
    assert first.versions() == [1, 2]
    assert store.get_model(id=second.id).versions() == []
    with v2.open("b.bin") as f:
        assert f.read() == b"b" * 1000


def test_non_finite_values_round_trip(store, tmp_path):
    import math

    exp0 = store.create_experiment("p", "numpy")
    exp0.connect({"f32": np.float32(0.5), "i64": np.int64(7), "lst": [np.int32(1), 2.5]})
    assert exp0.get_parameters()["General"] == {"f32": 0.5, "i64": 7, "lst": [1, 2.5]}
    assert type(exp0.get_parameters()["General"]["i64"]) is int

    exp = store.create_experiment("p", "nan")
    exp.connect({"inf": float("inf"), "nan": float("nan"), "neg": -0.0})
    got = exp.get_parameters()["General"]
    assert got["inf"] == float("inf") and math.isnan(got["nan"]) and got["neg"] == 0.0
    assert exp.info()["params"]["General/inf"] == float("inf")
    (tmp_path / "f.bin").write_bytes(b"x")
    m = store.record_model("m", tmp_path / "f.bin", metadata={"loss": float("nan"), "big": 1e308})
    md = m.metadata
    assert math.isnan(md["loss"]) and md["big"] == 1e308
