"""An MLflow artifact repository storing artifacts in a modelvault store.

Registered through the ``mlflow.artifact_repository`` entry point for the
``modelvault`` scheme, so that

    mlflow.create_experiment("exp", artifact_location="modelvault:///abs/path/to/store")

stores every artifact of the experiment's runs (and its logged models)
deduplicated and compressed: a checkpoint that differs from the previous
one in a few places costs only the chunks that changed.

Layout: each artifact is an object of the store's S3-like namespace, bucket
``mlflow``, key = the rest of the artifact URI's path after the store
directory: ``<run id>/artifacts/<artifact path>`` for a run of an experiment
created with ``artifact_location="modelvault:///store"``, and
``models/<model id>/artifacts/<path>`` for its logged models. The same files
are thus visible through ``modelvault serve``'s S3 endpoint as
``s3://mlflow/<key>``.

Which part of the URI's path is the store: the longest prefix holding a
store; if none does, the first prefix that does not exist yet becomes the
store. ``modelvault:///data/vault`` thus creates the store ``/data/vault``
on first use (if ``/data/vault`` does not exist), and the run paths MLflow
appends stay keys inside it. An existing folder is used only once it is a
store: create it first with ``modelvault.open(path)`` if it exists empty.

One store handle per directory per process (a store is single-writer):
handles are cached in a module-level dict and shared by every repository
object, and by :func:`modelvault.open`.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from typing import Dict, List, Optional, Tuple

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repo import ArtifactRepository

import modelvault

BUCKET = "mlflow"

# Open stores by directory, kept for the life of the process: MLflow makes
# a repository object per call, and reopening the store each time would be
# slow (and a second writable open in one process is refused).
_stores: Dict[str, modelvault.Store] = {}
_stores_lock = threading.Lock()


def _split(uri: str) -> Tuple[str, str]:
    """(store directory, key prefix) of a ``modelvault:`` URI."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "modelvault":
        raise MlflowException(f"not a modelvault URI: {uri!r}")
    if parsed.netloc not in ("", "localhost"):
        raise MlflowException(
            f"invalid modelvault URI {uri!r}: the store must be a local absolute path "
            "(modelvault:///abs/path/to/store)"
        )
    path = urllib.parse.unquote(parsed.path)
    if not path.startswith("/"):
        raise MlflowException(f"invalid modelvault URI {uri!r}: the path must be absolute")
    parts = [p for p in path.split("/") if p]
    for p in parts:
        if p in (".", ".."):
            raise MlflowException(f"invalid modelvault URI {uri!r}: '.' and '..' are not allowed")
    # The longest prefix that is a store.
    for i in range(len(parts), 0, -1):
        d = "/" + "/".join(parts[:i])
        if modelvault.Store.exists(d):
            return d, "/".join(parts[i:])
    # None: the first prefix that does not exist becomes the store.
    for i in range(1, len(parts) + 1):
        d = "/" + "/".join(parts[:i])
        if not os.path.exists(d):
            return d, "/".join(parts[i:])
    raise MlflowException(
        f"invalid modelvault URI {uri!r}: no store found along the path and every folder exists"
    )


def _store(directory: str) -> modelvault.Store:
    with _stores_lock:
        s = _stores.get(directory)
        if s is None:
            s = modelvault.open(directory)
            _stores[directory] = s
        return s


class ModelvaultArtifactRepository(ArtifactRepository):
    """MLflow artifacts as objects of bucket ``mlflow`` of a modelvault store."""

    def __init__(
        self, artifact_uri: str, tracking_uri: Optional[str] = None, registry_uri: Optional[str] = None
    ) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        self._dir, self._prefix = _split(artifact_uri)
        self._store = _store(self._dir)

    def _key(self, *paths: Optional[str]) -> str:
        """The object key of an artifact path under this repository's root.
        A '..' component is refused: it could name another run's artifacts."""
        given = "/".join(p for p in paths if p)
        parts = [x for x in given.replace("\\", "/").split("/") if x not in ("", ".")]
        if ".." in parts:
            raise MlflowException(f"invalid artifact path {given!r}: '..' is not allowed")
        key = "/".join(([self._prefix] if self._prefix else []) + parts)
        if not key:
            raise MlflowException(f"invalid artifact path {given!r}: it names the store itself")
        return key

    def log_artifact(self, local_file: str, artifact_path: Optional[str] = None) -> None:
        key = self._key(artifact_path, os.path.basename(local_file))
        self._store.put_object(BUCKET, key, local_file)

    def log_artifacts(self, local_dir: str, artifact_path: Optional[str] = None) -> None:
        for root, dirs, files in os.walk(local_dir):
            dirs.sort()
            rel = os.path.relpath(root, local_dir)
            rel = "" if rel == "." else rel.replace(os.sep, "/")
            for f in sorted(files):
                key = self._key(artifact_path, rel, f)
                self._store.put_object(BUCKET, key, os.path.join(root, f))

    def _base(self, path: Optional[str]) -> str:
        """The key prefix (with a trailing '/') of an artifact folder."""
        try:
            k = self._key(path)
        except MlflowException:
            if path:
                raise
            k = ""
        return k + "/" if k else ""

    def list_artifacts(self, path: Optional[str] = None) -> List[FileInfo]:
        base = self._base(path)
        if not self._store._n.read_only:
            self._store._n.ensure_bucket(BUCKET)
        try:
            objects, prefixes = self._store.list_objects(BUCKET, base, "/")
        except modelvault.NotFound:
            return []
        root = self._base(None)
        out = []
        for p in prefixes:
            out.append(FileInfo(p[len(root):].rstrip("/"), True, None))
        for key, size in objects:
            out.append(FileInfo(key[len(root):], False, size))
        out.sort(key=lambda f: f.path)
        return out

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        key = self._key(remote_file_path)
        try:
            self._store.get_object(BUCKET, key, local_path)
        except modelvault.NotFound as e:
            raise MlflowException(f"No such artifact: {remote_file_path!r} ({e})") from e

    def delete_artifacts(self, artifact_path: Optional[str] = None) -> None:
        base = self._base(artifact_path)
        try:
            objects, _ = self._store.list_objects(BUCKET, base)
        except modelvault.NotFound:
            return
        for key, _ in objects:
            self._store.delete_object(BUCKET, key)
        if artifact_path:
            # A single file named by the path itself.
            self._store.delete_object(BUCKET, self._key(artifact_path))
