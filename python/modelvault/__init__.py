"""modelvault: deduplicated, compressed storage of ML model weights, with an
experiment and model registry.

The API follows ClearML's SDK where it can (``Task`` -> :class:`Experiment`,
``OutputModel``/``InputModel`` -> :class:`Model`, ``Model.query_models`` ->
:meth:`Store.query_models`), but everything lives in one local store
directory, opened with :func:`open` (or :class:`Store`):

>>> import modelvault
>>> store = modelvault.open("/tmp/vault")                     # doctest: +SKIP
>>> with store.create_experiment("nlp", "bert-ft", tags=["gpu"]) as exp:  # doctest: +SKIP
...     exp.connect({"lr": 3e-5, "epochs": 3}, name="General")
...     exp.report_scalar("loss", "train", 0.25, iteration=10)
...     model = store.record_model("bert-ft", "checkpoints/", experiment=exp)

The native half (``modelvault._modelvault``, Rust through PyO3) releases the
GIL during every store operation, so other Python threads run meanwhile.
Errors are raised as :class:`Error` subclasses carrying the engine's message.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, BinaryIO, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _modelvault as _native
from ._modelvault import (
    AlreadyExists,
    Error,
    Immutable,
    IntegrityError,
    InvalidInput,
    Locked,
    NotFound,
    ReadOnly,
)

__all__ = [
    "AlreadyExists",
    "Artifact",
    "BlobFile",
    "BlobWriterFile",
    "Error",
    "Experiment",
    "Immutable",
    "IntegrityError",
    "InvalidInput",
    "Locked",
    "Model",
    "NotFound",
    "ReadOnly",
    "Store",
    "open",
]

__version__ = "0.1.0"

PathLike = Union[str, "os.PathLike[str]"]

# One native handle per store directory (and mode) per process: a store is
# single-writer, and a second writable open of the same directory in this
# process would fail with Locked. Weak values: the store closes once no
# Store, Experiment, Model or file object uses it any more.
_handles: "weakref.WeakValueDictionary[Tuple[str, bool], Any]" = weakref.WeakValueDictionary()
_handles_lock = threading.Lock()


def _native_store(path: PathLike, create: bool, read_only: bool) -> Any:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"store path must be str or os.PathLike, not {type(path).__name__}")
    key = (os.path.realpath(os.fspath(path)), read_only)
    with _handles_lock:
        h = _handles.get(key)
        if h is None:
            h = _native.NativeStore(os.fspath(path), create=create, read_only=read_only)
            _handles[key] = h
        return h


def open(path: PathLike, *, create: bool = True, read_only: bool = False) -> "Store":  # noqa: A001
    """Opens the store in ``path`` (created if missing, unless ``create=False``).

    ``read_only=True`` opens it beside a writer in another process: no lock is
    taken, every write raises :class:`ReadOnly`. Opening the same directory
    again in this process returns a store sharing the same handle.

    Raises :class:`Locked` if another process holds the store.
    """
    return Store(path, create=create, read_only=read_only)


def _ms_to_s(ms: Optional[int]) -> Optional[float]:
    return None if ms is None else ms / 1000.0


class Store:
    """A modelvault store directory: blobs, experiments, models, objects."""

    def __init__(self, path: PathLike, *, create: bool = True, read_only: bool = False) -> None:
        self._n = _native_store(path, create, read_only)

    def __repr__(self) -> str:
        return f"modelvault.Store({str(self.path)!r})"

    @staticmethod
    def exists(path: PathLike) -> bool:
        """True if ``path`` holds a store (whether or not it can be opened now)."""
        return _native.NativeStore.exists(os.fspath(path))

    @property
    def path(self) -> str:
        """The store directory."""
        return str(self._n.path)

    @property
    def id(self) -> str:
        """The store's UUID (part of model URLs)."""
        return self._n.id

    @property
    def read_only(self) -> bool:
        """True if opened with ``read_only=True``."""
        return self._n.read_only

    def catch_up(self) -> None:
        """On a read-only store: see every commit the writer made so far."""
        self._n.catch_up()

    # ---- experiments (ClearML: Task) ----

    def create_experiment(
        self,
        project: str,
        name: str,
        *,
        tags: Sequence[str] = (),
        type: Optional[str] = None,  # noqa: A002
    ) -> "Experiment":
        """Creates an experiment (state ``created``). ClearML: ``Task.create``.

        Use it as a context manager to start it and mark it completed (or
        failed, on an exception) automatically.
        """
        return Experiment(self, self._n.create_experiment(project, name, _strs(tags, "tags"), type))

    def init_experiment(
        self,
        project: str,
        name: str,
        *,
        tags: Sequence[str] = (),
        type: Optional[str] = None,  # noqa: A002
        capture_environment: bool = True,
    ) -> "Experiment":
        """Creates and starts an experiment, capturing the environment.
        ClearML: ``Task.init``."""
        exp = self.create_experiment(project, name, tags=tags, type=type)
        exp.start(capture_environment=capture_environment)
        return exp

    def get_experiment(
        self,
        id: Optional[str] = None,  # noqa: A002
        *,
        project: Optional[str] = None,
        name: Optional[str] = None,
    ) -> "Experiment":
        """An experiment by id, or the newest one called ``name`` in ``project``.
        ClearML: ``Task.get_task``. Raises :class:`NotFound`."""
        if id is not None:
            return Experiment(self, self._n.experiment(id))
        if project is None or name is None:
            raise TypeError("get_experiment needs an id, or both project and name")
        return Experiment(self, self._n.experiment_by_name(project, name))

    def get_experiments(
        self,
        *,
        project: Optional[str] = None,
        name_prefix: Optional[str] = None,
        status: Optional[str] = None,
        tag: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List["Experiment"]:
        """Experiments matching every filter given, oldest first.
        ClearML: ``Task.get_tasks``."""
        infos = self._n.experiments(project, name_prefix, status, tag, limit)
        return [Experiment(self, self._n.experiment(i["id"])) for i in infos]

    # ---- models (ClearML: OutputModel / InputModel / Model) ----

    def record_model(
        self,
        name: str,
        path: PathLike,
        *,
        project: Optional[str] = None,
        experiment: Optional["Experiment"] = None,
        framework: Optional[str] = None,
        tags: Sequence[str] = (),
        metadata: Optional[Dict[str, Any]] = None,
        labels: Optional[Dict[str, int]] = None,
        comment: Optional[str] = None,
        base: Optional[str] = None,
    ) -> "Model":
        """Stores the file or folder ``path`` as the next version of the model
        ``name`` (created on the first call). Formats are detected from the
        content; the framework is guessed from them unless given. Unchanged
        chunks of earlier versions are not stored again, and changed files are
        stored as deltas against the latest version's file of the same path
        (or of the version named by ``base``, e.g. ``"resnet@3"``).

        ClearML: ``OutputModel(task, ...).update_weights(...)`` /
        ``update_weights_package(...)``. Returns the model pinned at the new
        version. ``project``, ``framework`` and ``comment`` apply when this
        call creates the model; ``tags``, ``metadata`` and ``labels`` are
        added to an existing one.
        """
        files = _walk(path)
        exp_id = experiment.id if experiment is not None else None
        try:
            self._n.model_by_name(name)
            exists = True
        except NotFound:
            exists = False
        if not exists:
            self._n.create_model(
                name,
                project,
                framework,
                _strs(tags, "tags"),
                labels,
                metadata,
                comment,
                None,
                exp_id,
                None,
            )
        native, version = self._n.put_version(
            name, files, project, exp_id, base, False, False
        )
        model = Model(self, native, version)
        if exists:
            if tags:
                model.add_tags(tags)
            if metadata:
                model.update_metadata(metadata)
            if labels:
                model.set_labels(labels)
        return model

    def register_external_model(
        self,
        name: str,
        url: str,
        *,
        checksum: Optional[str] = None,
        project: Optional[str] = None,
        framework: Optional[str] = None,
        tags: Sequence[str] = (),
        metadata: Optional[Dict[str, Any]] = None,
        comment: Optional[str] = None,
    ) -> "Model":
        """Registers a model whose bytes live at ``url`` without storing them;
        the same URL again returns the same model. ClearML:
        ``InputModel.import_model``."""
        return Model(
            self,
            self._n.register_external_model(
                name, url, checksum, project, framework, _strs(tags, "tags"), metadata, comment
            ),
        )

    def get_model(
        self,
        spec: Optional[str] = None,
        *,
        id: Optional[str] = None,  # noqa: A002
        name: Optional[str] = None,
        alias: Optional[str] = None,
        version: Optional[int] = None,
        url: Optional[str] = None,
    ) -> "Model":
        """A model by id, name, ``NAME@VERSION``, ``NAME@ALIAS`` or model URL
        (``spec``), or by the keyword given. The model is pinned at the version
        meant (the latest if none). ClearML: ``InputModel(model_id=...)``,
        ``Model(model_id)``. Raises :class:`NotFound`."""
        given = [x for x in (spec, id, name, url) if x is not None]
        if len(given) != 1:
            raise TypeError("get_model needs exactly one of spec, id, name or url")
        s = given[0]
        if not isinstance(s, str):
            raise TypeError(f"model spec must be str, not {type(s).__name__}")
        if alias is not None and version is not None:
            raise TypeError("give alias or version, not both")
        if alias is not None:
            s = f"{s}@{alias}"
        elif version is not None:
            s = f"{s}@{int(version)}"
        native, v = self._n.resolve_model(s)
        return Model(self, native, v)

    def query_models(
        self,
        query: Optional[str] = None,
        *,
        project: Optional[str] = None,
        name: Optional[str] = None,
        tags: Sequence[str] = (),
        framework: Optional[str] = None,
    ) -> List["Model"]:
        """Models matching a query such as
        ``'metadata.accuracy > 0.9 AND framework = pytorch'``; the keywords
        add conjuncts (ClearML: ``Model.query_models(project_name=...,
        model_name=..., tags=...)``). A malformed query raises
        :class:`InvalidInput`."""
        parts = [f"({query})"] if query else []
        if project is not None:
            parts.append(f"project = {_quote(project)}")
        if name is not None:
            parts.append(f"name = {_quote(name)}")
        if framework is not None:
            parts.append(f"framework = {_quote(framework)}")
        for t in tags:
            parts.append(f"tag = {_quote(t)}")
        if not parts:
            return [Model(self, self._n.model(m["id"])) for m in self._n.models()]
        # The query alone is passed as written, so that the byte offsets in
        # a parse error point into the caller's text.
        text = query if query and len(parts) == 1 else " AND ".join(parts)
        if not isinstance(text, str):
            raise TypeError(f"query must be str, not {type(text).__name__}")
        infos = self._n.find_models(text)
        return [Model(self, self._n.model(i["id"])) for i in infos]

    def models(self) -> List["Model"]:
        """Every model, in creation order."""
        return [Model(self, self._n.model(m["id"])) for m in self._n.models()]

    # ---- files and blobs ----

    def open_blob(self, blob: str, *, buffering: int = 1 << 20) -> BinaryIO:
        """A stored blob as a read-only binary file (``io.BufferedReader`` over
        a :class:`BlobFile`; ``buffering=0`` gives the raw :class:`BlobFile`).
        Every chunk read is verified (:class:`IntegrityError` otherwise)."""
        return _buffered(BlobFile(self._n.open_blob(blob)), buffering)

    def blob_writer(self) -> "BlobWriterFile":
        """A writable binary file that stores what is written as a new blob
        when closed (its id then in ``.blob_id``)."""
        return BlobWriterFile(self._n.blob_writer())

    def put_blob(self, data: Union[bytes, bytearray, memoryview, BinaryIO]) -> str:
        """Stores bytes (or everything a binary file yields); returns the blob id.
        The blob is held until :meth:`release_blob`."""
        with self.blob_writer() as w:
            if isinstance(data, (bytes, bytearray, memoryview)):
                w.write(data)
            else:
                while True:
                    b = data.read(1 << 20)
                    if not b:
                        break
                    w.write(b)
        assert w.blob_id is not None
        return w.blob_id

    def release_blob(self, blob: str) -> None:
        """Drops the hold :meth:`put_blob` or a blob writer took."""
        self._n.release_blob(blob)

    def tensors(self, blob: str) -> Optional[List[Dict[str, Any]]]:
        """The tensors (name, dtype, shape, start, end) of a stored safetensors
        or GGUF file; ``None`` for other content."""
        t = self._n.tensors(blob)
        if t is None:
            return None
        return [
            {"name": n, "dtype": d, "shape": list(s), "start": a, "end": b} for n, d, s, a, b in t
        ]

    def read_tensor(self, blob: str, name: str) -> Tuple[str, List[int], bytes]:
        """One tensor of a stored safetensors or GGUF file, reading only its
        chunks: ``(dtype, shape, bytes)``. Raises :class:`NotFound`."""
        d, s, b = self._n.read_tensor(blob, name)
        return d, list(s), b

    def tensor_array(self, blob: str, name: str) -> Any:
        """:meth:`read_tensor` as a NumPy array (needs NumPy), shaped
        outermost dimension first (a GGUF tensor's shape, listed innermost
        first, is reversed). Quantized and other types without a NumPy
        equivalent raise :class:`InvalidInput`."""
        import numpy as np

        d, s, b = self._n.read_tensor(blob, name)
        dt = _NUMPY_DTYPES.get(d)
        if dt is None:
            raise InvalidInput(f"invalid dtype {d!r} of tensor {name!r}: no NumPy equivalent")
        with self.open_blob(blob, buffering=0) as f:
            if f.read(4) == b"GGUF":
                s = list(reversed(s))
        a = np.frombuffer(b, dtype=dt)
        if _prod(s) != a.size:
            raise IntegrityError(
                f"tensor {name!r}: shape {s} holds {_prod(s)} elements, its bytes {a.size}"
            )
        return a.reshape(s)

    # ---- maintenance ----

    def stats(self) -> Dict[str, Any]:
        """Space and dedup figures (logical, unique and stored bytes, ratios)."""
        return self._n.stats()

    def verify(self, *, read_data: bool = True) -> Dict[str, Any]:
        """Checks the store; the report's ``problems`` list is empty when clean."""
        return self._n.verify(read_data)

    def gc(
        self,
        *,
        compact_below: Optional[float] = None,
        expire_uploads_after: Optional[float] = None,
        compact_metadata: bool = False,
    ) -> Dict[str, Any]:
        """Collects garbage (unreferenced chunks, expired uploads) and compacts packs."""
        return self._n.gc(compact_below, expire_uploads_after, compact_metadata)

    def prune(
        self,
        *,
        keep_last: Optional[int] = None,
        keep_within: Optional[float] = None,
        dry_run: bool = True,
        model: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Deletes old versions (of ``model``, or of every model) that no rule
        keeps: the newest ``keep_last``, those younger than ``keep_within``
        seconds. Finalized and aliased versions are always kept. A dry run
        (the default) only reports."""
        return self._n.prune(keep_last, keep_within, dry_run, model)

    def delete_model(self, spec: str, *, dry_run: bool = True, force: bool = False) -> Dict[str, Any]:
        """Deletes a model and its versions (``force`` for a finalized or used one)."""
        native, _ = self._n.resolve_model(spec)
        return native.delete(dry_run, force)

    def delete_experiment(
        self, id: str, *, dry_run: bool = True, with_models: bool = False, force: bool = False  # noqa: A002
    ) -> Dict[str, Any]:
        """Deletes an experiment (and with ``with_models`` the models it created)."""
        return self._n.experiment(id).delete(dry_run, with_models, force)

    # ---- the S3-like object namespace (what `modelvault serve` exposes) ----

    def put_object(self, bucket: str, key: str, data: Union[PathLike, bytes]) -> int:
        """Stores a local file (path) or bytes as object ``key`` of ``bucket``
        (created if missing); returns its size."""
        self._n.ensure_bucket(bucket)
        if isinstance(data, (bytes, bytearray, memoryview)):
            return self._n.put_object_bytes(bucket, key, bytes(data))
        return self._n.put_object_file(bucket, key, os.fspath(data))

    def get_object(self, bucket: str, key: str, dest: PathLike) -> int:
        """Copies object ``key`` of ``bucket`` into the local file ``dest``."""
        return self._n.get_object_file(bucket, key, os.fspath(dest))

    def open_object(self, bucket: str, key: str, *, buffering: int = 1 << 20) -> BinaryIO:
        """Object ``key`` of ``bucket`` as a read-only binary file."""
        return _buffered(BlobFile(self._n.open_object(bucket, key)), buffering)

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str = ""
    ) -> Tuple[List[Tuple[str, int]], List[str]]:
        """(key, size) of every object under ``prefix``, and the common prefixes
        when a delimiter is given."""
        return self._n.list_objects(bucket, prefix, delimiter)

    def delete_object(self, bucket: str, key: str) -> bool:
        """Deletes an object; False if there was none."""
        return self._n.delete_object(bucket, key)


_NUMPY_DTYPES = {
    "f64": "<f8",
    "f32": "<f4",
    "f16": "<f2",
    "i64": "<i8",
    "i32": "<i4",
    "i16": "<i2",
    "i8": "i1",
    "u8": "u1",
    "bool": "?",
}


def _prod(s: Sequence[int]) -> int:
    n = 1
    for x in s:
        n *= x
    return n


def _strs(v: Any, what: str) -> List[str]:
    """A list of str from a list or tuple (a lone str is refused: iterating
    it would give its characters)."""
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple, set, frozenset)):
        raise TypeError(f"{what} must be a list of str, not {type(v).__name__}")
    return list(v)


def _quote(s: str) -> str:
    return json.dumps(s)


def _walk(path: PathLike) -> List[Tuple[str, str]]:
    """(path in the version, local path) of a file, or of every file under a
    folder (relative, '/'-separated, sorted); symbolic links are followed."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be str or os.PathLike, not {type(path).__name__}")
    p = os.fspath(path)
    if os.path.isfile(p):
        return [(os.path.basename(p), p)]
    if not os.path.isdir(p):
        raise NotFound(f"file not found: {p}")
    out = []
    for root, dirs, files in os.walk(p):
        dirs.sort()
        for f in sorted(files):
            full = os.path.join(root, f)
            rel = os.path.relpath(full, p).replace(os.sep, "/")
            out.append((rel, full))
    if not out:
        raise InvalidInput(f"invalid model folder {p!r}: it holds no file")
    return out


def _buffered(raw: "BlobFile", buffering: int) -> BinaryIO:
    if buffering == 0:
        return raw  # type: ignore[return-value]
    return io.BufferedReader(raw, buffer_size=max(buffering, io.DEFAULT_BUFFER_SIZE))  # type: ignore[return-value]


class BlobFile(io.RawIOBase):
    """A stored blob (a model file, an artifact, an object) as a raw, seekable,
    read-only binary file. Wrap it in ``io.BufferedReader`` (what the
    ``open`` methods return by default) for small reads; torch.load,
    numpy.load and pickle read it without a temporary copy."""

    def __init__(self, native: Any) -> None:
        super().__init__()
        self._r = native
        self.name = "<modelvault blob>"

    @property
    def size(self) -> int:
        """The blob's length in bytes."""
        return self._r.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed file")
        m = memoryview(b).cast("B")
        data = self._r.read(len(m))
        n = len(data)
        m[:n] = data
        return n

    def read(self, size: Optional[int] = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if size is None or size < 0:
            return self.readall()
        return self._r.read(size)

    def readall(self) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._r.read(max(self._r.size - self._r.tell(), 0))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._r.seek(offset, whence)

    def tell(self) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._r.tell()


class BlobWriterFile(io.RawIOBase):
    """A writable binary file storing a new blob: write, then ``close()`` (or
    leave the ``with`` block) and read ``blob_id``. Leaving the block on an
    exception stores nothing."""

    def __init__(self, native: Any) -> None:
        super().__init__()
        self._w = native
        self.blob_id: Optional[str] = None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._w.write(bytes(b))

    def tell(self) -> int:
        return self._w.size

    def close(self) -> None:
        if not self.closed:
            try:
                self.blob_id = self._w.finish()
            finally:
                super().close()

    def abort(self) -> None:
        """Drops what was written; nothing is stored."""
        if not self.closed:
            self._w.abort()
            super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class Artifact:
    """One revision of an experiment's artifact: stored bytes or a small value."""

    def __init__(self, store: Store, d: Dict[str, Any]) -> None:
        self._store = store
        self.name: str = d["name"]
        self.revision: int = d["revision"]
        self.blob: Optional[str] = d["blob"]
        self.size: Optional[int] = d["size"]
        self.value: Any = d["value"]
        self.metadata: Dict[str, Any] = d["metadata"]
        self.created: float = d["created_ms"] / 1000.0

    def __repr__(self) -> str:
        return f"<modelvault.Artifact {self.name!r} r{self.revision}>"

    def open(self, *, buffering: int = 1 << 20) -> BinaryIO:
        """The stored bytes as a binary file. An inline value has none."""
        if self.blob is None:
            raise InvalidInput(f"invalid artifact {self.name!r}: it is an inline value, not bytes")
        return self._store.open_blob(self.blob, buffering=buffering)

    def read(self) -> bytes:
        """All the stored bytes."""
        with self.open(buffering=0) as f:
            return f.read()

    def get(self) -> Any:
        """The value: an inline value as stored, a JSON artifact decoded,
        other bytes as bytes. ClearML: ``Artifact.get``."""
        if self.blob is None:
            return self.value
        data = self.read()
        if self.metadata.get("content_type") == "application/json":
            return json.loads(data)
        return data


class _ConsoleTee(io.TextIOBase):
    """Passes writes on to the original stream and queues complete lines."""

    def __init__(self, orig: Any, stream: str, sink: "_ConsoleSink") -> None:
        self._orig = orig
        self._stream = stream
        self._sink = sink
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._orig.write(s)
        text = self._partial + s
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._sink.add(self._stream, line)
        return len(s)

    def flush(self) -> None:
        self._orig.flush()

    def finish(self) -> None:
        if self._partial:
            self._sink.add(self._stream, self._partial)
            self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._orig, "encoding", "utf-8")

    def isatty(self) -> bool:
        return False


class _ConsoleSink:
    """Batches captured lines into one commit per batch (a commit per line
    would wait for a durable write each)."""

    def __init__(self, exp: "Experiment", max_lines: int = 256, max_age: float = 0.5) -> None:
        self._exp = exp
        self._lines: List[Tuple[str, str]] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._max_lines = max_lines
        self._max_age = max_age

    def add(self, stream: str, line: str) -> None:
        with self._lock:
            self._lines.append((stream, line))
            due = len(self._lines) >= self._max_lines or time.monotonic() - self._last >= self._max_age
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            self._last = time.monotonic()
        if lines:
            self._exp._n.log_lines(lines)


class Experiment:
    """An experiment (ClearML: ``Task``): parameters, console, scalars,
    progress, artifacts, environment, and the models it created or used."""

    def __init__(self, store: Store, native: Any) -> None:
        self._store = store
        self._n = native

    def __repr__(self) -> str:
        i = self.info()
        return f"<modelvault.Experiment {i['project']}/{i['name']} {self.id} {i['status']}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def id(self) -> str:
        return self._n.id

    @property
    def store(self) -> Store:
        return self._store

    def info(self) -> Dict[str, Any]:
        """The whole record (project, name, tags, type as ``kind``, status,
        progress, timestamps in ms, environment, run, params, input and
        created models, console line count)."""
        return self._n.info()

    @property
    def project(self) -> str:
        return self.info()["project"]

    @property
    def name(self) -> str:
        return self.info()["name"]

    @property
    def tags(self) -> List[str]:
        return self.info()["tags"]

    @property
    def type(self) -> Optional[str]:
        return self.info()["kind"]

    @property
    def status(self) -> str:
        """``created``, ``running``, ``completed``, ``failed`` or ``stopped``."""
        return self.info()["status"]

    # ---- life cycle ----

    def start(self, *, capture_environment: bool = True) -> None:
        """Marks the experiment running; by default records the environment
        first (Python version, installed packages, git commit, host)."""
        if capture_environment:
            self.capture_environment()
        self._n.start()

    def capture_environment(self) -> None:
        """Records the interpreter, the installed distributions
        (importlib.metadata), the host, user, command line, working folder and
        the git repository, commit and diff of the working folder if any."""
        import importlib.metadata as md

        packages: Dict[str, str] = {}
        for dist in md.distributions():
            meta: Any = dist.metadata  # an email.message.Message at run time
            name = meta.get("Name")
            if name:
                packages[name] = dist.version
        requirements = "\n".join(f"{k}=={v}" for k, v in sorted(packages.items()))
        interp = f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"
        self._n.set_environment(interp, packages, requirements)
        cwd = os.getcwd()
        self._n.set_run_info(
            socket.gethostname(),
            _user(),
            list(sys.argv),
            cwd,
            _git(["config", "--get", "remote.origin.url"], cwd),
            _git(["rev-parse", "HEAD"], cwd),
            _git(["diff", "HEAD"], cwd) or None,
        )

    def set_progress(self, percent: int) -> None:
        """Progress 0 to 100 (:class:`InvalidInput` otherwise)."""
        if isinstance(percent, bool) or not isinstance(percent, int):
            raise TypeError(f"progress must be int, not {type(percent).__name__}")
        self._n.set_progress(percent)

    def get_progress(self) -> int:
        """The last progress set (100 once completed)."""
        return self._n.progress()

    def mark_completed(self) -> None:
        """Final state ``completed`` (progress 100). ClearML: ``mark_completed``."""
        self._n.finish("completed")

    def mark_failed(self) -> None:
        """Final state ``failed``. ClearML: ``mark_failed``."""
        self._n.finish("failed")

    def mark_stopped(self) -> None:
        """Final state ``stopped``. ClearML: ``mark_stopped``."""
        self._n.finish("stopped")

    def close(self) -> None:
        """Completes a running experiment; nothing on a finished one."""
        if self.status == "running":
            self.mark_completed()

    def __enter__(self) -> "Experiment":
        if self.status == "created":
            self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.status == "running":
            if exc_type is None:
                self.mark_completed()
            else:
                self.mark_failed()

    # ---- hyperparameters ----

    def set_parameters(self, params: Dict[str, Any], section: str = "General") -> None:
        """Stores hyperparameters under ``section`` (nested dicts flatten to
        ``outer/inner`` keys, as in ClearML). Values: int, float, bool, str or
        lists of them. ClearML: ``set_parameters``."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict, not {type(params).__name__}")
        flat: Dict[str, Any] = {}
        _flatten(params, f"{section}/" if section else "", flat)
        self._n.set_params(flat)

    def connect(self, params: Dict[str, Any], name: str = "General") -> Dict[str, Any]:
        """Stores ``params`` as section ``name`` and returns it. ClearML: ``connect``."""
        self.set_parameters(params, name)
        return params

    def get_parameters(self) -> Dict[str, Dict[str, Any]]:
        """Hyperparameters as ``{section: {key: value}}`` (nested keys
        rebuilt as nested dicts). ClearML: ``get_parameters_as_dict``."""
        out: Dict[str, Any] = {}
        for k, v in self._n.params().items():
            parts = k.split("/")
            d = out
            for p in parts[:-1]:
                d = d.setdefault(p, {})
            d[parts[-1]] = v
        return out

    def get_parameters_flat(self) -> Dict[str, Any]:
        """Hyperparameters as stored: ``{"Section/key": value}``."""
        return self._n.params()

    # ---- console ----

    def log(self, text: str, stream: str = "stdout") -> None:
        """Appends console text (one line per line of ``text``)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        lines = text.split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()
        self._n.log_lines([(stream, line) for line in lines])

    def console(self, start: int = 0, limit: int = 1000) -> List[Dict[str, Any]]:
        """Console lines from sequence number ``start``: dicts with seq,
        ts_ms, stream, text."""
        return self._n.console(start, limit)

    def console_tail(self, n: int = 100) -> List[Dict[str, Any]]:
        """The last ``n`` console lines."""
        return self._n.console_tail(n)

    @contextlib.contextmanager
    def capture_console(self) -> Iterator["Experiment"]:
        """While the block runs, what is written to ``sys.stdout`` and
        ``sys.stderr`` still reaches them and is also logged (in batches)."""
        sink = _ConsoleSink(self)
        out = _ConsoleTee(sys.stdout, "stdout", sink)
        err = _ConsoleTee(sys.stderr, "stderr", sink)
        old = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
        try:
            yield self
        finally:
            sys.stdout, sys.stderr = old
            out.finish()
            err.finish()
            sink.flush()

    # ---- scalars ----

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        """One point of metric ``title``, variant ``series``. ClearML:
        ``Logger.report_scalar(title, series, value, iteration)``."""
        self._n.report_scalars([(title, series, iteration, value)])

    def report_scalars(self, points: Iterable[Tuple[str, str, float, int]]) -> None:
        """Many points ``(title, series, value, iteration)`` in one commit."""
        self._n.report_scalars([(t, s, i, v) for t, s, v, i in points])

    def get_scalars(self, title: str) -> Dict[str, List[Tuple[int, float]]]:
        """``{series: [(iteration, value), ...]}`` of metric ``title``."""
        out: Dict[str, List[Tuple[int, float]]] = {}
        for series, it, v in self._n.scalars(title):
            out.setdefault(series, []).append((it, v))
        return out

    # ---- artifacts ----

    def upload_artifact(
        self, name: str, artifact_object: Any, metadata: Optional[Dict[str, Any]] = None
    ) -> int:
        """Stores an artifact revision; returns its revision number.
        ``artifact_object``: a path (``pathlib.Path``; a str naming an
        existing file), bytes, a dict (stored as JSON bytes), or an int,
        float, bool, str or list (stored inline). ClearML: ``upload_artifact``."""
        md = dict(metadata or {})
        if isinstance(artifact_object, os.PathLike) or (
            isinstance(artifact_object, str) and os.path.isfile(artifact_object)
        ):
            p = os.fspath(artifact_object)
            if not os.path.isfile(p):
                raise NotFound(f"file not found: {p}")
            return self._n.add_artifact_file(name, p, md)
        if isinstance(artifact_object, (bytes, bytearray, memoryview)):
            return self._n.add_artifact_bytes(name, bytes(artifact_object), md)
        if isinstance(artifact_object, dict):
            md.setdefault("content_type", "application/json")
            data = json.dumps(artifact_object, sort_keys=True).encode()
            return self._n.add_artifact_bytes(name, data, md)
        return self._n.add_artifact_value(name, artifact_object, md)

    def get_artifact(self, name: str, revision: Optional[int] = None) -> Artifact:
        """An artifact's latest revision (or the one given). Raises :class:`NotFound`."""
        return Artifact(self._store, self._n.artifact(name, revision))

    @property
    def artifacts(self) -> Dict[str, Artifact]:
        """The latest revision of every artifact, by name."""
        return {a["name"]: Artifact(self._store, a) for a in self._n.artifacts()}

    # ---- lineage ----

    def use_model(self, model: "Model", version: Optional[int] = None) -> None:
        """Records that this experiment used ``model`` (at ``version``, else
        its pinned or latest version). ClearML: ``InputModel`` + ``connect``."""
        v = version if version is not None else model.version
        self._n.use_model(model.id, v)

    def input_models(self) -> List["Model"]:
        """The models this experiment used, each pinned at the version used."""
        return [
            Model(self._store, self._store._n.model(mid), v) for mid, v in self.info()["input_models"]
        ]

    def created_models(self) -> List["Model"]:
        """The models this experiment created."""
        return [Model(self._store, self._store._n.model(mid)) for mid in self.info()["created_models"]]


def _flatten(d: Dict[str, Any], prefix: str, out: Dict[str, Any]) -> None:
    for k, v in d.items():
        if not isinstance(k, str):
            raise TypeError(f"parameter names must be str, not {type(k).__name__}")
        if isinstance(v, dict):
            _flatten(v, f"{prefix}{k}/", out)
        else:
            out[f"{prefix}{k}"] = v


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error
        return ""


def _git(args: List[str], cwd: str) -> Optional[str]:
    try:
        r = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = r.stdout.strip()
    return out if r.returncode == 0 and out else None


class Model:
    """A model (ClearML: ``OutputModel``/``InputModel``/``Model``): numbered
    immutable versions of files, metadata, tags, labels, aliases and a URL.
    A ``Model`` object is pinned at one version (``version``): the one it was
    recorded or resolved at, else the latest."""

    def __init__(self, store: Store, native: Any, version: Optional[int] = None) -> None:
        self._store = store
        self._n = native
        self._version = version

    def __repr__(self) -> str:
        return f"<modelvault.Model {self.name}@{self.version} {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.id == self.id and other.version == self.version

    def __hash__(self) -> int:
        return hash((self.id, self.version))

    @property
    def id(self) -> str:
        return self._n.id

    @property
    def store(self) -> Store:
        return self._store

    def info(self) -> Dict[str, Any]:
        """The whole record (name, project, framework, tags, labels, design,
        metadata, comment, experiment, parent, timestamps, latest, aliases,
        external)."""
        return self._n.info()

    @property
    def version(self) -> int:
        """The pinned version (the latest when none was asked for)."""
        return self._version if self._version is not None else self.info()["latest"]

    def at(self, version: Union[int, str]) -> "Model":
        """This model pinned at a version number or alias."""
        if isinstance(version, str):
            native, v = self._store._n.resolve_model(f"{self.id}@{version}")
            return Model(self._store, native, v)
        self._n.version(version)  # NotFound if there is none
        return Model(self._store, self._n, version)

    @property
    def name(self) -> str:
        return self.info()["name"]

    @property
    def project(self) -> str:
        return self.info()["project"]

    @property
    def framework(self) -> str:
        return self.info()["framework"]

    @property
    def tags(self) -> List[str]:
        return self.info()["tags"]

    @property
    def labels(self) -> Dict[str, int]:
        return self.info()["labels"]

    @property
    def metadata(self) -> Dict[str, Any]:
        return self.info()["metadata"]

    @property
    def comment(self) -> Optional[str]:
        return self.info()["comment"]

    @property
    def aliases(self) -> Dict[str, int]:
        return self.info()["aliases"]

    @property
    def published(self) -> bool:
        """True once finalized. ClearML: ``published``."""
        return self.info()["finalized_ms"] is not None

    @property
    def url(self) -> str:
        """The model URL of the pinned version
        (``modelvault://<store>/models/<id>@<version>``); an external model's
        own URL. ClearML: ``url``."""
        ext = self.info()["external"]
        if ext is not None:
            return ext["url"]
        return self._n.url(self.version)

    def get_url(self, version: Optional[int] = None) -> str:
        """The model URL of ``version`` (``None``: the URL of the model
        itself, which resolves to its latest version)."""
        return self._n.url(version)

    def versions(self) -> List[int]:
        return list(self._n.versions())

    def files(self, version: Optional[int] = None) -> List[Dict[str, Any]]:
        """The files of a version (default: the pinned one): path, blob, size,
        and detected format."""
        return self._n.version(version if version is not None else self.version)["files"]

    def version_info(self, version: Optional[int] = None) -> Dict[str, Any]:
        """A version's record (files, created_ms, experiment)."""
        return self._n.version(version if version is not None else self.version)

    def _file(self, path: Optional[str], version: Optional[int]) -> Dict[str, Any]:
        files = self.files(version)
        if path is None:
            if len(files) != 1:
                raise InvalidInput(
                    f"invalid file path None: version holds {len(files)} files, name one of "
                    f"{[f['path'] for f in files][:10]}"
                )
            return files[0]
        for f in files:
            if f["path"] == path:
                return f
        raise NotFound(f"file not found: {path} in {self.name}@{version or self.version}")

    def open(
        self, path: Optional[str] = None, *, version: Optional[int] = None, buffering: int = 1 << 20
    ) -> BinaryIO:
        """A file of a version as a read-only binary file (``path`` may be
        omitted when the version has one file)."""
        return self._store.open_blob(self._file(path, version)["blob"], buffering=buffering)

    def get_local_copy(self, dest: PathLike, *, version: Optional[int] = None) -> str:
        """Writes every file of a version under the folder ``dest`` (each
        fsynced; the bytes never pass through Python); returns it.
        ClearML: ``get_local_copy``."""
        d = os.fspath(dest)
        jobs = []
        for f in self.files(version):
            parts = f["path"].split("/")
            # Stored paths are checked when committed; a record that names a
            # path out of `dest` anyway is damaged, never followed.
            if any(p in ("", ".", "..") or "\\" in p or os.sep in p for p in parts):
                raise IntegrityError(f"corrupt version record: file path {f['path']!r}")
            target = os.path.join(d, *parts)
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            jobs.append((f["blob"], target))
        # Two files at a time, as `modelvault get` restores them: the copy
        # runs without the GIL, so one file's writes overlap the other's
        # decoding. The first error stops the files not begun and is raised.
        copy = self._store._n.copy_blob_to_file
        if len(jobs) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [pool.submit(copy, blob, target) for blob, target in jobs]
                try:
                    for done in futures:
                        done.result()
                except BaseException:
                    for f in futures:
                        f.cancel()  # the files not begun are not copied
                    raise
        else:
            for blob, target in jobs:
                copy(blob, target)
        return d

    def tensors(self, path: Optional[str] = None, *, version: Optional[int] = None) -> Optional[List[Dict[str, Any]]]:
        """The tensors of a safetensors or GGUF file of a version."""
        return self._store.tensors(self._file(path, version)["blob"])

    def read_tensor(
        self, tensor: str, path: Optional[str] = None, *, version: Optional[int] = None
    ) -> Tuple[str, List[int], bytes]:
        """One tensor of a safetensors or GGUF file: ``(dtype, shape, bytes)``."""
        return self._store.read_tensor(self._file(path, version)["blob"], tensor)

    def tensor_array(self, tensor: str, path: Optional[str] = None, *, version: Optional[int] = None) -> Any:
        """One tensor as a NumPy array (needs NumPy)."""
        return self._store.tensor_array(self._file(path, version)["blob"], tensor)

    # ---- changes (each raises Immutable once the model is finalized) ----

    def add_version(self, path: PathLike, *, experiment: Optional[Experiment] = None) -> "Model":
        """Stores a file or folder as the next version; returns the model
        pinned at it. ClearML: ``update_weights`` / ``update_weights_package``."""
        files = _walk(path)
        exp_id = experiment.id if experiment is not None else None
        return Model(self._store, self._n, self._n.add_version_files(files, exp_id))

    update_weights = add_version
    update_weights_package = add_version

    def set_metadata(self, key: str, value: Any) -> None:
        """Sets one metadata entry (int, float, bool, str or a list of them)."""
        self._n.set_metadata(key, value)

    def update_metadata(self, metadata: Dict[str, Any]) -> None:
        """Sets several metadata entries."""
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
        for k, v in metadata.items():
            self._n.set_metadata(k, v)

    def get_metadata(self, key: str) -> Any:
        """A metadata value (:class:`NotFound` if unset)."""
        md = self.metadata
        if key not in md:
            raise NotFound(f"metadata not found: {key} of model {self.id}")
        return md[key]

    def remove_metadata(self, key: str) -> None:
        self._n.remove_metadata(key)

    def add_tags(self, tags: Sequence[str]) -> None:
        self._n.add_tags(_strs(tags, "tags"))

    def remove_tag(self, tag: str) -> None:
        self._n.remove_tag(tag)

    def set_labels(self, labels: Dict[str, int]) -> None:
        """Class labels (name -> index). ClearML: ``labels``."""
        self._n.set_labels(labels)

    def set_alias(self, alias: str, version: Optional[int] = None) -> None:
        """Names a version (default: the pinned one); :class:`AlreadyExists`
        if the alias is taken (use :meth:`move_alias`)."""
        self._n.set_alias(alias, version if version is not None else self.version)

    def move_alias(self, alias: str, version: int) -> None:
        self._n.move_alias(alias, version)

    def remove_alias(self, alias: str) -> None:
        self._n.remove_alias(alias)

    def finalize(self) -> None:
        """Freezes the model: every later change raises :class:`Immutable`.
        ClearML: ``publish``."""
        self._n.finalize()

    publish = finalize

    # ---- lineage ----

    @property
    def experiment(self) -> Optional[Experiment]:
        """The experiment that created the model, if any. ClearML: ``task``."""
        eid = self.info()["experiment"]
        return None if eid is None else Experiment(self._store, self._store._n.experiment(eid))

    def used_by(self) -> List[Tuple[Experiment, int]]:
        """The experiments that used this model, with the version each used."""
        return [(Experiment(self._store, self._store._n.experiment(e)), v) for e, v in self._n.used_by()]

    def delete_version(self, version: int, *, dry_run: bool = True, force: bool = False) -> Dict[str, Any]:
        return self._n.delete_version(version, dry_run, force)
