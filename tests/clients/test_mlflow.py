"""MLflow logging artifacts to the server: a file tracking store in tmp, an
experiment whose artifacts live at s3://BUCKET/path, log_artifacts of a
folder of weight-like files, then download_artifacts byte-identical.

MLflow runs in a child Python process so its environment (the endpoint, the
keys) and its global state do not leak into other tests."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys

from conftest import tree_bytes

MiB = 1 << 20

CHILD = r"""
import json, sys
import mlflow
from mlflow.tracking import MlflowClient

src, dst, artifact_root = sys.argv[1:4]
client = MlflowClient()
exp_id = client.create_experiment("weights", artifact_location=artifact_root)
with mlflow.start_run(experiment_id=exp_id) as run:
    mlflow.log_param("lr", 0.001)
    mlflow.log_artifacts(src, artifact_path="checkpoint")
    run_id = run.info.run_id
listed = [f.path for f in client.list_artifacts(run_id, "checkpoint")]
out = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoint", dst_path=dst)
print(json.dumps({"run_id": run_id, "listed": listed, "out": out,
                  "artifact_uri": client.get_run(run_id).info.artifact_uri}))
"""


def safetensors_like(rng, tensors) -> bytes:
    """A safetensors file: an 8-byte header length, a JSON header, then
    float32 data (random, like trained weights)."""
    header, blobs, offset = {}, [], 0
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        data = struct.pack(f"<{n}f", *(rng.gauss(0, 0.02) for _ in range(n)))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def test_mlflow_log_and_download_artifacts(server, tmp_path):
    s3 = server.client()
    s3.create_bucket(Bucket="mlflow-artifacts")

    rng = random.Random(5)
    src = tmp_path / "checkpoint"
    (src / "opt").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(
        safetensors_like(rng, [("embed.weight", (256, 512)), ("head.weight", (512, 256)), ("head.bias", (256,))])
    )
    (src / "opt" / "adam_state.bin").write_bytes(rng.randbytes(3 * MiB))
    (src / "config.json").write_text('{"layers": 2, "hidden": 512}')
    files = tree_bytes(src)
    assert sum(map(len, files.values())) > 3 * MiB

    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=(tmp_path / "mlruns").as_uri(),
        MLFLOW_ALLOW_FILE_STORE="true",
        MLFLOW_S3_ENDPOINT_URL=server.endpoint,
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        GIT_PYTHON_REFRESH="quiet",
    )
    (tmp_path / "aws-config").write_text("[default]\ns3 =\n    addressing_style = path\n")
    dst = tmp_path / "downloaded"
    dst.mkdir()
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(dst), "s3://mlflow-artifacts/experiments/weights"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, f"mlflow child failed:\n{r.stdout}\n{r.stderr}"
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["artifact_uri"].startswith("s3://mlflow-artifacts/experiments/weights/")
    assert sorted(result["listed"]) == ["checkpoint/config.json", "checkpoint/model.safetensors",
                                        "checkpoint/opt"]

    # What MLflow downloaded is byte-identical to what it logged.
    assert tree_bytes(dst / "checkpoint") == files
    # And the bytes are in the bucket under the run's artifact path.
    prefix = result["artifact_uri"][len("s3://mlflow-artifacts/"):] + "/checkpoint/"
    got = s3.get_object(Bucket="mlflow-artifacts", Key=prefix + "model.safetensors")["Body"].read()
    assert got == files["model.safetensors"]
