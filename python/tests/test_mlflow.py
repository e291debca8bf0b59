"""MLflow with the modelvault artifact repository: two checkpoints of a run
deduplicated, downloads byte-identical, a pyfunc model round-trip, and the
artifacts visible as objects of bucket `mlflow`."""

import filecmp
import os

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")

import modelvault  # noqa: E402
import modelvault.mlflow as mvm  # noqa: E402


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    yield tmp_path
    mlflow.set_tracking_uri(None)


def _write_checkpoint(d, arrays):
    from safetensors.numpy import save_file

    d.mkdir(parents=True, exist_ok=True)
    save_file({k: v for k, v in arrays.items() if k != "opt"}, str(d / "model.safetensors"))
    np.save(d / "optimizer.npy", arrays["opt"])
    (d / "config.json").write_text('{"layers": 4}')


def _same_tree(a, b):
    ra = sorted(os.path.relpath(os.path.join(r, f), a) for r, _, fs in os.walk(a) for f in fs)
    rb = sorted(os.path.relpath(os.path.join(r, f), b) for r, _, fs in os.walk(b) for f in fs)
    assert ra == rb
    for p in ra:
        assert filecmp.cmp(os.path.join(a, p), os.path.join(b, p), shallow=False), p
    return ra


def test_entry_point_registered(tmp_path):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    vault = str(tmp_path / "vault")
    try:
        repo = get_artifact_repository(f"modelvault://{vault}/1/abc/artifacts")
        assert isinstance(repo, mvm.ModelvaultArtifactRepository)
        assert modelvault.Store.exists(vault)
    finally:
        mvm._stores.pop(vault, None)


def test_checkpoints_deduplicated_and_downloaded(tracking):
    tmp = tracking
    vault = tmp / "vault"
    rng = np.random.default_rng(3)
    arrays = {
        "layer1.weight": rng.standard_normal((512, 512), dtype=np.float32),
        "layer2.weight": rng.standard_normal((512, 512), dtype=np.float32),
        "layer2.bias": rng.standard_normal(512, dtype=np.float32),
        "opt": rng.standard_normal(300000, dtype=np.float32),
    }
    _write_checkpoint(tmp / "step1", arrays)
    # The next checkpoint: a few values perturbed.
    arrays2 = {k: v.copy() for k, v in arrays.items()}
    arrays2["layer1.weight"][7, :5] += 0.01
    arrays2["layer2.bias"][100] = 3.0
    arrays2["opt"][::50000] *= 1.5
    _write_checkpoint(tmp / "step2", arrays2)
    one = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(tmp / "step1") for f in fs)
    assert one > 2_000_000

    eid = mlflow.create_experiment("dedup", artifact_location=f"modelvault://{vault}")
    with mlflow.start_run(experiment_id=eid) as run:
        mlflow.log_artifacts(str(tmp / "step1"), "checkpoints/step1")
        mlflow.log_artifacts(str(tmp / "step2"), "checkpoints/step2")
        mlflow.log_artifact(str(tmp / "step2" / "config.json"))
        rid = run.info.run_id

    store = modelvault.open(vault)
    st = store.stats()
    assert st["stored_bytes"] < 2 * one
    # Far less, in fact: the second checkpoint costs only its changed chunks.
    assert st["stored_bytes"] < 1.5 * one

    top = mlflow.artifacts.list_artifacts(run_id=rid)
    assert [(f.path, f.is_dir) for f in top] == [("checkpoints", True), ("config.json", False)]
    assert top[1].file_size == len('{"layers": 4}')
    sub = mlflow.artifacts.list_artifacts(run_id=rid, artifact_path="checkpoints/step2")
    assert [(f.path, f.file_size) for f in sub] == [
        (f"checkpoints/step2/{n}", os.path.getsize(tmp / "step2" / n))
        for n in ("config.json", "model.safetensors", "optimizer.npy")
    ]

    dst = tmp / "download"
    got = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="checkpoints", dst_path=str(dst))
    assert _same_tree(tmp / "step1", os.path.join(got, "step1")) == [
        "config.json", "model.safetensors", "optimizer.npy"]
    _same_tree(tmp / "step2", os.path.join(got, "step2"))
    one_file = mlflow.artifacts.download_artifacts(
        run_id=rid, artifact_path="checkpoints/step2/optimizer.npy", dst_path=str(tmp / "single"))
    assert np.array_equal(np.load(one_file), arrays2["opt"])

    # The same bytes are objects of bucket "mlflow" (what `modelvault serve` shows).
    keys = dict(store.list_objects("mlflow", f"{rid}/artifacts/")[0])
    assert keys[f"{rid}/artifacts/checkpoints/step1/optimizer.npy"] == os.path.getsize(
        tmp / "step1" / "optimizer.npy")
    with store.open_object("mlflow", f"{rid}/artifacts/checkpoints/step2/optimizer.npy") as f:
        assert np.array_equal(np.load(f), arrays2["opt"])

    # Deleting a folder of artifacts.
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(mlflow.get_run(rid).info.artifact_uri)
    repo.delete_artifacts("checkpoints/step1")
    assert [f.path for f in repo.list_artifacts("checkpoints")] == ["checkpoints/step2"]

    # A path climbing out of the run is refused, and nothing is stored.
    from mlflow.exceptions import MlflowException

    before = store.list_objects("mlflow")[0]
    with pytest.raises(MlflowException, match="'..' is not allowed"):
        repo.log_artifact(str(tmp / "step2" / "config.json"), "a/../../../other-run")
    with pytest.raises(MlflowException, match="'..' is not allowed"):
        repo._download_file("../x", str(tmp / "x"))
    assert store.list_objects("mlflow")[0] == before


def test_pyfunc_log_model_round_trip(tracking):
    pytest.importorskip("pandas", reason="mlflow.pyfunc needs pandas (not in mlflow-skinny)")
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [2 * x for x in model_input]

    vault = tracking / "vault"
    eid = mlflow.create_experiment("models", artifact_location=f"modelvault://{vault}")
    with mlflow.start_run(experiment_id=eid):
        info = mlflow.pyfunc.log_model(name="doubler", python_model=Doubler())
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.predict([1, 2, 5]) == [2, 4, 10]
    local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri,
                                                dst_path=str(tracking / "m"))
    assert sorted(os.listdir(local))[:1] == ["MLmodel"]
    store = modelvault.open(vault)
    objs = dict(store.list_objects("mlflow")[0])
    mlmodel = [k for k in objs if k.endswith("/MLmodel")]
    assert len(mlmodel) == 1
    with store.open_object("mlflow", mlmodel[0]) as f:
        assert f.read() == open(os.path.join(local, "MLmodel"), "rb").read()


def test_bad_uris():
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="absolute"):
        mvm._split("modelvault:relative/path")
    with pytest.raises(MlflowException, match="local absolute path"):
        mvm._split("modelvault://host/abs/path")
    with pytest.raises(MlflowException, match="not allowed"):
        mvm._split("modelvault:///tmp/../etc")
