"""Labelled datasets of embeddings: what ``biomoe-edge embed`` writes and task heads are trained on.

A dataset is a folder holding ``data.parquet`` (one row per subject, device, modality, representation and window)
and ``_dataset.json`` (how it was made: inputs, windows, labels, counts, model identity, content sha256). One line
opens it: ``load_dataset(path)``, or ``pandas.read_parquet(path)`` without the checks. Columns, in order:

    subject, device, modality, representation   str
    window_start_s, window_end_s                float, seconds in the recording's time base (gateway time for the
                                                gateway's recordings: the numbers the live records carry)
    quality                                     tuple of str (the ingest's window flags; empty: passed every check)
    label                                       str, or None (no label covers the window whole; counted by reason)
    embedding                                   float32 array (192,)
    model_sha256, checkpoint_sha256, precision, random_weights, seed, engine   the model identity

``dataset_sha256`` hashes the content (not the file's bytes), so the same rows give the same hash whatever wrote
them; head manifests record it. A dataset is written whole or not at all (temporary folder, then rename), and
``load_dataset`` refuses one whose content does not match its recorded hash.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import numpy as np

from biomoe_edge.vocabulary import EMBEDDING_DIM

DATA_FILE = "data.parquet"
MANIFEST_FILE = "_dataset.json"  # the underscore: pyarrow's folder discovery skips it (read_parquet(folder) works)
METADATA_KEY = b"biomoe_edge"
FORMAT_NAME = "biomoe-edge-dataset"
FORMAT_VERSION = 1

IDENTITY_COLUMNS = ("model_sha256", "checkpoint_sha256", "precision", "random_weights", "seed", "engine")
DATASET_COLUMNS = ("subject", "device", "modality", "representation", "window_start_s", "window_end_s", "quality",
                   "label", "embedding") + IDENTITY_COLUMNS
_STRING_COLUMNS = ("subject", "device", "modality", "representation")
_NULLABLE_COLUMNS = ("label", "model_sha256", "checkpoint_sha256", "precision", "seed", "engine")


class DatasetError(ValueError):
    """A dataset is missing, incomplete, malformed, or not what its manifest says."""


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("subject", pa.string()), ("device", pa.string()), ("modality", pa.string()),
        ("representation", pa.string()), ("window_start_s", pa.float64()), ("window_end_s", pa.float64()),
        ("quality", pa.list_(pa.string())), ("label", pa.string()),
        ("embedding", pa.list_(pa.float32(), EMBEDDING_DIM)),
        ("model_sha256", pa.string()), ("checkpoint_sha256", pa.string()), ("precision", pa.string()),
        ("random_weights", pa.bool_()), ("seed", pa.int64()), ("engine", pa.string()),
    ])


def check_columns(frame) -> dict[str, list]:
    """Plain Python / NumPy columns from a DataFrame (or a dict of columns), checked."""
    columns = list(frame.columns) if hasattr(frame, "columns") else list(frame)
    missing = [c for c in DATASET_COLUMNS if c not in columns]
    extra = [c for c in columns if c not in DATASET_COLUMNS]
    if missing or extra:
        raise DatasetError(f"a dataset has exactly the columns {', '.join(DATASET_COLUMNS)}; "
                           + (f"missing: {', '.join(missing)}" if missing else f"unknown: {', '.join(extra)}"))
    out = {}
    for name in DATASET_COLUMNS:
        values = list(frame[name])
        if name in _NULLABLE_COLUMNS:
            values = [None if v is None or (isinstance(v, float) and v != v) else v for v in values]
        out[name] = values
    n = len(out["subject"])
    embeddings = np.zeros((n, EMBEDDING_DIM), dtype=np.float32)
    for i, value in enumerate(out["embedding"]):
        vector = np.asarray(value, dtype=np.float32)
        if vector.shape != (EMBEDDING_DIM,):
            raise DatasetError(f"row {i}: embedding has shape {vector.shape}, expected ({EMBEDDING_DIM},)")
        embeddings[i] = vector
    if not np.isfinite(embeddings).all():
        row = int(np.argmax(~np.isfinite(embeddings).all(axis=1)))
        raise DatasetError(f"row {row}: embedding holds NaN or Inf")
    out["embedding"] = embeddings
    out["quality"] = [tuple(str(q) for q in value) for value in out["quality"]]
    out["seed"] = [None if v is None else int(v) for v in out["seed"]]
    out["random_weights"] = [bool(v) for v in out["random_weights"]]
    for name in ("window_start_s", "window_end_s"):
        out[name] = np.asarray(out[name], dtype=np.float64)
    return out


def _content_sha256(columns: dict) -> str:
    """sha256 of the rows' content, column by column, independent of how the file encodes it."""
    digest = hashlib.sha256(json.dumps(list(DATASET_COLUMNS)).encode())
    for name in DATASET_COLUMNS:
        values = columns[name]
        digest.update(b"\x00" + name.encode())
        if name == "embedding":
            digest.update(np.ascontiguousarray(values, dtype="<f4").tobytes())
        elif name in ("window_start_s", "window_end_s"):
            digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
        else:
            digest.update(json.dumps([list(v) if isinstance(v, tuple) else v for v in values]).encode())
    return digest.hexdigest()


def frame_from_columns(columns: dict):
    """The DataFrame of a dataset from its (checked) columns: object columns where values may be None or tuples."""
    import pandas as pd

    n = len(columns["subject"])
    data = {}
    for name in DATASET_COLUMNS:
        if name == "embedding":
            data[name] = pd.Series([row for row in columns[name]], dtype=object) if n else pd.Series([], dtype=object)
        elif name in _STRING_COLUMNS:
            data[name] = pd.Series(columns[name], dtype=object)
        elif name in ("window_start_s", "window_end_s"):
            data[name] = pd.Series(columns[name], dtype=np.float64)
        elif name == "random_weights":
            data[name] = pd.Series(columns[name], dtype=bool)
        else:
            data[name] = pd.Series(list(columns[name]), dtype=object)
    return pd.DataFrame(data, columns=list(DATASET_COLUMNS))


def write_dataset(frame, path, *, metadata: dict | None = None, overwrite: bool = False) -> pathlib.Path:
    """Write ``frame`` (a DataFrame with exactly ``DATASET_COLUMNS``) as the dataset folder ``path``, with
    ``metadata`` (JSON) in its manifest. Written whole or not at all; an existing dataset is replaced only with
    ``overwrite``. Returns the folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = pathlib.Path(path)
    _check_target(path, overwrite)
    columns = check_columns(frame)
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "rows": len(columns["subject"]),
                "columns": list(DATASET_COLUMNS), "sha256": _content_sha256(columns), "complete": True,
                "metadata": json.loads(json.dumps(metadata or {}, default=str, allow_nan=False))}
    schema = _schema().with_metadata({METADATA_KEY: json.dumps(manifest).encode()})
    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.name == "embedding":
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), EMBEDDING_DIM))
        elif field.name == "quality":
            arrays.append(pa.array([list(v) for v in values], field.type))
        else:
            arrays.append(pa.array(values, field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    tmp = path.with_name(path.name + ".partial")
    _remove_own_folder(tmp)
    tmp.mkdir(parents=True)
    pq.write_table(table, tmp / DATA_FILE)
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    old = None
    if path.exists():
        old = path.with_name(path.name + ".old")
        _remove_own_folder(old)
        path.rename(old)
    tmp.rename(path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _foreign_entries(folder: pathlib.Path) -> list[str]:
    """What ``folder`` holds besides a dataset's own files (``--overwrite`` must never delete those)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in (DATA_FILE, MANIFEST_FILE) or not p.is_file())


def _remove_own_folder(folder: pathlib.Path) -> None:
    """Remove a leftover of this module (``<out>.partial``, ``<out>.old``) that holds only a dataset's files."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir() or _foreign_entries(folder):
        raise DatasetError(f"{folder}: in the way of writing the dataset, and not one this SDK left (it holds "
                           "other files); move it away")
    shutil.rmtree(folder)


def _check_target(path: pathlib.Path, overwrite: bool) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise DatasetError(f"{path}: already exists; choose another --out, or replace it with --overwrite")
    if path.is_symlink() or not (path.is_dir() and ((path / MANIFEST_FILE).is_file() or not any(path.iterdir()))):
        raise DatasetError(f"{path}: exists and is not a dataset; not replacing it")
    foreign = _foreign_entries(path)
    if foreign:
        raise DatasetError(f"{path}: --overwrite replaces a dataset, but this folder also holds "
                           f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}, which embed did not write; "
                           "not replacing it")


def _data_path(path) -> pathlib.Path:
    path = pathlib.Path(path)
    if path.is_dir():
        return path / DATA_FILE
    return path


def read_manifest(path) -> dict:
    """The manifest of a dataset (folder or its data.parquet): how it was made, rows, sha256, metadata."""
    import pyarrow.parquet as pq

    data = _data_path(path)
    if not data.is_file():
        raise DatasetError(f"{path}: not a dataset (no {DATA_FILE})")
    try:
        schema = pq.read_schema(data)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a foreign or truncated file
        raise DatasetError(f"{data}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DatasetError(f"{data}: a Parquet file, but not a biomoe-edge dataset (no {METADATA_KEY.decode()} metadata)")
    manifest = json.loads(raw)
    if manifest.get("format") != FORMAT_NAME or manifest.get("complete") is not True:
        raise DatasetError(f"{data}: manifest format/complete fields are not those of a complete dataset")
    return manifest


def load_dataset(path):
    """The dataset at ``path`` (its folder, or its data.parquet) as a pandas DataFrame with ``DATASET_COLUMNS``
    (see the module docstring); ``frame.attrs["metadata"]`` holds how it was made. Checks its content sha256."""
    import pyarrow.parquet as pq

    manifest = read_manifest(path)
    data = _data_path(path)
    try:
        table = pq.read_table(data)
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(f"{data}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in DATASET_COLUMNS if c not in table.column_names]
    if missing:
        raise DatasetError(f"{data}: lacks column(s) {', '.join(missing)}")
    columns = {name: table.column(name).to_pylist() for name in DATASET_COLUMNS if name != "embedding"}
    embedding = table.column("embedding").combine_chunks()
    flat = embedding.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    columns["embedding"] = flat.reshape(len(table), EMBEDDING_DIM) if len(table) else np.zeros((0, EMBEDDING_DIM), np.float32)
    checked = check_columns(columns)
    if _content_sha256(checked) != manifest.get("sha256"):
        raise DatasetError(f"{data}: its content does not match the sha256 its manifest records (modified or damaged)")
    frame = frame_from_columns(checked)
    frame.attrs["metadata"] = manifest.get("metadata", {})
    frame.attrs["sha256"] = manifest["sha256"]
    return frame


def dataset_sha256(path_or_frame) -> str:
    """The content hash of a dataset (its folder or data.parquet, or a DataFrame with ``DATASET_COLUMNS``)."""
    if isinstance(path_or_frame, (str, pathlib.Path)):
        return load_dataset(path_or_frame).attrs["sha256"]
    return _content_sha256(check_columns(path_or_frame))


def check_target(path, overwrite: bool = False) -> None:
    """DatasetError when ``path`` exists (and ``overwrite`` is off, or it is something other than a dataset)."""
    _check_target(pathlib.Path(path), overwrite)
