"""The separation model registry: names, the URLs and checksums Demucs publishes, fetch and list.

Demucs publishes each pretrained model as a file named `<signature>-<sha256 prefix>.th` under
`https://dl.fbaipublicfiles.com/demucs/` (its `demucs/remote/files.txt`), and each named model as a
"bag" YAML listing the signatures it averages (`demucs/remote/<name>.yaml`). stemscribe keeps the
same layout in `<data dir>/models/demucs/` so that Demucs' own `LocalRepo`/`BagOnlyRepo` load it and
check each file's sha256 prefix on every load.

Nothing here imports torch: `stemscribe models list` and `models fetch` run without the
separation extra. A download only ever happens through `fetch_model` (the `models fetch` command);
an offline machine copies the files in with `install_from_dir` (`models fetch --from DIR`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from stemscribe.errors import InvalidOptionError, ModelError
from stemscribe.progress import ProgressCallback, report

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

DEMUCS_ROOT_URL = "https://dl.fbaipublicfiles.com/demucs/"
DEFAULT_MODEL = "htdemucs"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class WeightFile:
    """One published checkpoint: `<signature>-<sha256 prefix>.th` under `url`."""

    signature: str
    sha256_prefix: str
    url: str

    @property
    def filename(self) -> str:
        return f"{self.signature}-{self.sha256_prefix}.th"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A named separation model: the bag of checkpoints Demucs averages and the stems it gives."""

    name: str
    sources: tuple[str, ...]
    files: tuple[WeightFile, ...]
    description: str = ""
    weights: tuple[tuple[float, ...], ...] | None = None
    """Per-checkpoint, per-source weights of the bag (None: all equal), as in Demucs' YAML."""
    segment: float | None = None

    def bag_yaml(self) -> str:
        """The bag definition Demucs' `BagOnlyRepo` reads (`<name>.yaml`)."""
        lines = [f"models: [{', '.join(repr(f.signature) for f in self.files)}]"]
        if self.weights is not None:
            rows = ", ".join("[" + ", ".join(f"{w:g}" for w in row) + "]" for row in self.weights)
            lines.append(f"weights: [{rows}]")
        if self.segment is not None:
            lines.append(f"segment: {self.segment:g}")
        return "\n".join(lines) + "\n"


def _published(root: str, name: str) -> WeightFile:
    signature, prefix = name.removesuffix(".th").split("-", 1)
    return WeightFile(signature, prefix, f"{DEMUCS_ROOT_URL}{root}{name}")


_FOUR = ("drums", "bass", "other", "vocals")
_SIX = ("drums", "bass", "other", "vocals", "guitar", "piano")

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "htdemucs",
            _FOUR,
            (_published("hybrid_transformer/", "955717e8-8726e21a.th"),),
            "Hybrid Transformer Demucs v4 (default): vocals, drums, bass, other",
        ),
        ModelSpec(
            "htdemucs_6s",
            _SIX,
            (_published("hybrid_transformer/", "5c90dfd2-34c22ccb.th"),),
            "Hybrid Transformer Demucs, 6 sources: adds guitar and piano (piano is weak, per Demucs)",
        ),
        ModelSpec(
            "htdemucs_ft",
            _FOUR,
            tuple(
                _published("hybrid_transformer/", name)
                for name in (
                    "f7e0c4bc-ba3fe64a.th",
                    "d12395a8-e57c48e6.th",
                    "92cfc3b6-ef3bcb9c.th",
                    "04573f0d-f3cf25b2.th",
                )
            ),
            "htdemucs fine-tuned per source (a bag of 4; ~4x slower, slightly better)",
            weights=((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)),
        ),
    )
}
"""The models stemscribe knows, copied from Demucs 4's `remote/files.txt` and `remote/<name>.yaml`
(a test checks them against the installed demucs package)."""


class FileState(StrEnum):
    """What `list_models` found for one checkpoint file."""

    ok = "ok"
    missing = "missing"
    mismatch = "checksum mismatch"


@dataclass(frozen=True, slots=True)
class FileStatus:
    file: WeightFile
    path: Path
    state: FileState
    size: int | None
    sha256: str | None


@dataclass(frozen=True, slots=True)
class ModelStatus:
    spec: ModelSpec
    directory: Path
    files: tuple[FileStatus, ...]
    bag_present: bool

    @property
    def ready(self) -> bool:
        """Every checkpoint present with the published checksum, and the bag YAML written."""
        return self.bag_present and all(f.state is FileState.ok for f in self.files)

    @property
    def state(self) -> str:
        if self.ready:
            return "ok"
        if any(f.state is FileState.mismatch for f in self.files):
            return "checksum mismatch"
        if any(f.state is FileState.ok for f in self.files) or self.bag_present:
            return "incomplete"
        return "missing"


def data_dir() -> Path:
    """`$STEMSCRIBE_DATA_DIR`, else the service's default data directory."""
    env = os.environ.get("STEMSCRIBE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from stemscribe.settings import default_data_dir

    return default_data_dir()


def models_dir(backend: str = "demucs", root: Path | None = None) -> Path:
    """Where a backend's weights live: `<data dir>/models/<backend>/`."""
    return (root if root is not None else data_dir()) / "models" / backend


def get_spec(name: str) -> ModelSpec:
    """The registered model called `name`; InvalidOptionError naming the known ones otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise InvalidOptionError(
            f"unknown separation model {name!r}; known: {', '.join(sorted(MODELS))}"
        ) from None


def fetch_command(name: str) -> str:
    """The command that puts model `name`'s weights in place."""
    suffix = "" if name == DEFAULT_MODEL else f" --model {name}"
    return f"stemscribe models fetch demucs{suffix}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_status(file: WeightFile, directory: Path, *, verify: bool = True) -> FileStatus:
    """Whether `file` is in `directory`, and (with `verify`) whether its sha256 has the published prefix."""
    path = directory / file.filename
    if not path.is_file():
        return FileStatus(file, path, FileState.missing, None, None)
    size = path.stat().st_size
    if not verify:
        return FileStatus(file, path, FileState.ok, size, None)
    digest = sha256_file(path)
    state = FileState.ok if digest.startswith(file.sha256_prefix) else FileState.mismatch
    return FileStatus(file, path, state, size, digest)


def model_status(spec: ModelSpec | str, *, root: Path | None = None, verify: bool = True) -> ModelStatus:
    """What is present on disk for one model."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    directory = models_dir("demucs", root)
    files = tuple(file_status(f, directory, verify=verify) for f in spec.files)
    return ModelStatus(spec, directory, files, (directory / f"{spec.name}.yaml").is_file())


def list_models(*, root: Path | None = None, verify: bool = True) -> list[ModelStatus]:
    """The state of every registered model, in name order."""
    return [model_status(MODELS[name], root=root, verify=verify) for name in sorted(MODELS)]


def _write_atomic(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
    ) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def _write_bag(spec: ModelSpec, directory: Path) -> None:
    path = directory / f"{spec.name}.yaml"
    text = spec.bag_yaml()
    if not path.is_file() or path.read_text() != text:
        _write_atomic(path, text.encode())


def _install_stream(
    file: WeightFile,
    directory: Path,
    chunks: Iterable[bytes],
    *,
    source: str,
    total: int | None = None,
    on_bytes: ProgressCallback | None = None,
) -> Path:
    """Write `chunks` to a temporary file beside the target, check the sha256 prefix, then rename.

    A crash or a bad download leaves the target untouched (the partial file is removed).
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file.filename
    digest = hashlib.sha256()
    done = 0
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{file.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if total:
                    report(on_bytes, "fetching", done / total)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if not actual.startswith(file.sha256_prefix):
            raise ModelError(
                f"{file.filename} from {source}: sha256 {actual[:16]}... does not start with the "
                f"published {file.sha256_prefix}; not installed"
            )
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def fetch_model(
    name: str = DEFAULT_MODEL,
    *,
    root: Path | None = None,
    client: httpx.Client | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> ModelStatus:
    """Download model `name`'s checkpoints from Demucs' published URLs into the data directory.

    Files already present with the right checksum are kept (unless `force`). Each download is
    checked against the published sha256 prefix before it replaces anything. Raises ModelError
    when a download fails or does not match.
    """
    import httpx

    spec = get_spec(name)
    directory = models_dir("demucs", root)
    owned = client is None
    http = client if client is not None else httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0))
    try:
        for index, file in enumerate(spec.files):
            if not force and file_status(file, directory).state is FileState.ok:
                logger.info("%s already present", file.filename)
                continue

            def scaled(stage: str, fraction: float, index: int = index) -> None:
                report(progress, stage, (index + fraction) / len(spec.files))

            try:
                with http.stream("GET", file.url) as response:
                    if response.status_code != 200:
                        raise ModelError(f"{file.url}: HTTP {response.status_code}; nothing installed")
                    length = response.headers.get("content-length")
                    _install_stream(
                        file,
                        directory,
                        response.iter_bytes(_CHUNK),
                        source=file.url,
                        total=int(length) if length and length.isdigit() else None,
                        on_bytes=scaled,
                    )
            except httpx.HTTPError as exc:
                raise ModelError(
                    f"could not download {file.url}: {exc}; on an offline machine, copy the files in "
                    f"with `stemscribe models fetch demucs --model {name} --from DIR`"
                ) from exc
        _write_bag(spec, directory)
    finally:
        if owned:
            http.close()
    report(progress, "fetching", 1.0)
    return model_status(spec, root=root)


def install_from_dir(
    name: str,
    source_dir: Path,
    *,
    root: Path | None = None,
    force: bool = False,
) -> ModelStatus:
    """Copy model `name`'s checkpoints from `source_dir` (for example another machine's Demucs or
    torch hub cache), checking each file's published sha256 prefix."""
    spec = get_spec(name)
    if not source_dir.is_dir():
        raise InvalidOptionError(f"{source_dir}: not a directory")
    directory = models_dir("demucs", root)
    for file in spec.files:
        if not force and file_status(file, directory).state is FileState.ok:
            continue
        candidates = [source_dir / file.filename, *sorted(source_dir.glob(f"{file.signature}*.th"))]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ModelError(f"{source_dir}: no {file.filename} (checkpoint {file.signature} of {name})")
        with found.open("rb") as f:
            _install_stream(file, directory, iter(partial(f.read, _CHUNK), b""), source=str(found))
    _write_bag(spec, directory)
    return model_status(spec, root=root)
