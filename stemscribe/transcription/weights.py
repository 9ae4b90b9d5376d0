"""Our own ONNX weights (drum model, timbre and program classifiers): where they ship, their sha256, loading.

Each file `X.onnx` ships with `X.onnx.sha256`; a missing, damaged or unloadable file is a ModelError
that names the model and the file.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

from stemscribe.errors import ModelError


def shipped_weights(name: str) -> Path:
    """Path of `name` in the package's weights folder (it may be absent in a source checkout)."""
    return Path(str(resources.files("stemscribe") / "weights" / name))


def sidecar(path: Path) -> Path:
    """The `.sha256` file beside a weights file."""
    return path.with_name(path.name + ".sha256")


def check_sha256(path: Path, what: str) -> None:
    """Raise ModelError unless `path` hashes to the digest its sidecar holds."""
    digest_file = sidecar(path)
    try:
        expected = digest_file.read_text().split()[0].strip().lower()
    except (OSError, IndexError) as exc:
        raise ModelError(f"{what} checksum file {digest_file} is missing or empty") from exc
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelError(f"{what} weights {path} cannot be read: {exc}") from exc
    if actual != expected:
        raise ModelError(f"{what} weights {path} are damaged: sha256 {actual}, expected {expected}")


def open_session(path: Path, threads: int, what: str) -> Any:
    """A CPU onnxruntime session for checked weights; returns (session, its custom metadata)."""
    check_sha256(path, what)
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad graphs
        raise ModelError(f"{what} {path} could not be loaded: {exc}") from exc
    return session, dict(session.get_modelmeta().custom_metadata_map)


def write_weights(path: Path, data: bytes) -> str:
    """Write ONNX bytes to `path` and their sha256 sidecar (what `check_sha256` reads); return the digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    sidecar(path).write_text(f"{digest}  {path.name}\n")
    return digest
