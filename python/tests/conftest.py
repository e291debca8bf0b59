import os

import numpy as np
import pytest

import modelvault

# The tests run MLflow with its file tracking store (no database server).
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


@pytest.fixture
def store(tmp_path):
    return modelvault.open(tmp_path / "vault")


@pytest.fixture
def checkpoint(tmp_path):
    """A folder of real-ish weights: a safetensors file, a .npy array and a
    JSON config; returns (folder, {path: bytes})."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    d = tmp_path / "ckpt"
    (d / "sub").mkdir(parents=True)
    tensors = {
        "encoder.weight": rng.standard_normal((256, 128), dtype=np.float32),
        "encoder.bias": rng.standard_normal(128, dtype=np.float32),
        "head.weight": rng.standard_normal((64, 32)).astype(np.float16),
    }
    save_file(tensors, str(d / "model.safetensors"))
    np.save(d / "sub" / "extra.npy", rng.standard_normal(5000, dtype=np.float32))
    (d / "config.json").write_text('{"hidden": 128, "layers": 2}')
    files = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            files[os.path.relpath(p, d).replace(os.sep, "/")] = open(p, "rb").read()
    return d, files, tensors
