"""Fixtures for separation tests: a private data directory, a fake download server, and tiny
random-weight HTDemucs models saved in Demucs' checkpoint format and installed through the real
fetch code (as Demucs' own `demucs_unittest` does, no real weights are needed)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from stemscribe.separation import weights
from stemscribe.separation.weights import DEMUCS_ROOT_URL, ModelSpec, WeightFile

FOUR = ("drums", "bass", "other", "vocals")
SIX = ("drums", "bass", "other", "vocals", "guitar", "piano")
TINY_SR = 8000
EXTRA = "needs the separation extra: pip install 'stemscribe[separation]'"


def tiny_checkpoint(sources: tuple[str, ...] = FOUR, *, seed: int = 0) -> bytes:
    """A `.th` package ({klass, args, kwargs, state}, half-precision state) Demucs' `load_model` reads."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state

    torch.manual_seed(seed)
    model = HTDemucs(
        sources=list(sources),
        channels=4,
        depth=2,
        nfft=512,
        t_layers=1,
        t_heads=2,
        dconv_comp=4,
        segment=Fraction(1, 1),
        samplerate=TINY_SR,
    )
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=True)}
    buf = io.BytesIO()
    torch.save(package, buf)
    return buf.getvalue()


def spec_for(
    name: str, checkpoints: list[bytes], sources: tuple[str, ...] = FOUR, **extra: object
) -> ModelSpec:
    """A registry entry for `checkpoints`, named and checksummed the way Demucs publishes files."""
    files = []
    for i, data in enumerate(checkpoints):
        signature = hashlib.sha256(f"{name}/{i}".encode()).hexdigest()[:8]
        prefix = hashlib.sha256(data).hexdigest()[:8]
        files.append(WeightFile(signature, prefix, f"{DEMUCS_ROOT_URL}tiny/{signature}-{prefix}.th"))
    return ModelSpec(name, sources, tuple(files), "tiny random-weight test model", **extra)  # type: ignore[arg-type]


def serving(files: dict[str, bytes], hits: list[str] | None = None) -> httpx.Client:
    """An httpx client whose transport answers each URL in `files` (404 otherwise)."""

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if hits is not None:
            hits.append(url)
        if url not in files:
            return httpx.Response(404)
        return httpx.Response(200, content=files[url])

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.fixture
def make_spec() -> Callable[..., ModelSpec]:
    return spec_for


@pytest.fixture
def serve() -> Callable[..., httpx.Client]:
    return serving


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh `$STEMSCRIBE_DATA_DIR`."""
    root = tmp_path / "data"
    monkeypatch.setenv("STEMSCRIBE_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_checkpoints() -> dict[str, bytes]:
    torch = pytest.importorskip("torch", reason=EXTRA)
    pytest.importorskip("demucs", reason=EXTRA)
    # One thread: on a shared 2-core machine torch's spinning worker threads make tiny models ~50x slower.
    torch.set_num_threads(1)
    return {
        "four": tiny_checkpoint(FOUR, seed=0),
        "six": tiny_checkpoint(SIX, seed=1),
        "four_b": tiny_checkpoint(seed=2),
    }


@pytest.fixture
def install_tiny(
    data_root: Path, tiny_checkpoints: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ModelSpec]:
    """Register a tiny model as `name` and fetch it into the data directory with the real fetch code.

    `kind`: "four", "six", or a bag such as "four+four_b".
    """

    def install(name: str = "tiny", kind: str = "four", **extra: object) -> ModelSpec:
        keys = kind.split("+")
        spec = spec_for(name, [tiny_checkpoints[k] for k in keys], SIX if keys[0] == "six" else FOUR, **extra)
        monkeypatch.setitem(weights.MODELS, name, spec)
        files = {f.url: tiny_checkpoints[k] for f, k in zip(spec.files, keys, strict=True)}
        status = weights.fetch_model(name, client=serving(files))
        assert status.ready
        return spec

    return install
