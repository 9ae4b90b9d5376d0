"""The model registry, fetch and list: no torch needed (httpx MockTransport stands in for the network)."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
from pathlib import Path

import httpx
import pytest

from stemscribe.errors import InvalidOptionError, ModelError
from stemscribe.separation import weights
from stemscribe.separation.weights import FileState, fetch_model, install_from_dir, list_models, model_status

PAYLOAD = b"not a real checkpoint, but bytes with a known sha256 " * 1000


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch, make_spec) -> weights.ModelSpec:  # noqa: ANN001
    spec = make_spec("fake", [PAYLOAD, PAYLOAD[::-1]])
    monkeypatch.setitem(weights.MODELS, "fake", spec)
    return spec


def _no_partials(directory: Path) -> bool:
    return not directory.exists() or not list(directory.glob(".*.part"))


def test_registry_has_the_published_demucs_models() -> None:
    assert {"htdemucs", "htdemucs_6s", "htdemucs_ft"} <= set(weights.MODELS)
    assert weights.MODELS["htdemucs"].sources == ("drums", "bass", "other", "vocals")
    assert weights.MODELS["htdemucs_6s"].sources == ("drums", "bass", "other", "vocals", "guitar", "piano")
    htdemucs = weights.MODELS["htdemucs"].files[0]
    assert htdemucs.url == "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th"
    assert htdemucs.filename == "955717e8-8726e21a.th"
    assert len(weights.MODELS["htdemucs_ft"].files) == 4


def test_registry_matches_the_installed_demucs_package() -> None:
    """Our copy of Demucs' remote/files.txt and bag YAMLs stays what Demucs itself publishes."""
    found = importlib.util.find_spec("demucs")
    if found is None or not found.submodule_search_locations:
        pytest.skip("demucs not installed (the separation extra)")
    remote = Path(next(iter(found.submodule_search_locations))) / "remote"
    published: dict[str, str] = {}
    root = ""
    for line in (remote / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
            continue
        published[line.split("-", 1)[0]] = weights.DEMUCS_ROOT_URL + root + line
    for spec in weights.MODELS.values():
        text = (remote / f"{spec.name}.yaml").read_text()
        listed = ast.literal_eval(re.search(r"models:\s*(\[[^\]]*\])", text).group(1))  # type: ignore[union-attr]
        assert [f.signature for f in spec.files] == listed
        for f in spec.files:
            assert published[f.signature] == f.url
        if "weights:" in text:
            rows = ast.literal_eval(text.split("weights:", 1)[1].strip().rstrip(","))
            assert [list(map(float, r)) for r in spec.weights or ()] == [list(map(float, r)) for r in rows]
        else:
            assert spec.weights is None


def test_bag_yaml_round_trips(fake_model: weights.ModelSpec) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the separation extra")
    ft = yaml.safe_load(weights.MODELS["htdemucs_ft"].bag_yaml())
    assert ft["models"] == ["f7e0c4bc", "d12395a8", "92cfc3b6", "04573f0d"]
    assert ft["weights"][3] == [0, 0, 0, 1]
    assert yaml.safe_load(fake_model.bag_yaml()) == {"models": [f.signature for f in fake_model.files]}


def test_data_dir_follows_the_environment(data_root: Path) -> None:
    assert weights.models_dir() == data_root / "models" / "demucs"
    status = model_status("htdemucs")
    assert status.directory == data_root / "models" / "demucs"
    assert status.state == "missing" and not status.ready


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(InvalidOptionError, match="unknown separation model 'nope'.*htdemucs"):
        model_status("nope")


def test_fetch_downloads_checks_and_lists(data_root: Path, fake_model: weights.ModelSpec, serve) -> None:
    hits: list[str] = []
    files = {fake_model.files[0].url: PAYLOAD, fake_model.files[1].url: PAYLOAD[::-1]}
    seen: list[tuple[str, float]] = []
    status = fetch_model("fake", client=serve(files, hits), progress=lambda s, f: seen.append((s, f)))
    assert status.ready and status.state == "ok"
    assert sorted(hits) == sorted(files)
    assert seen[-1] == ("fetching", 1.0)
    target = data_root / "models" / "demucs" / fake_model.files[0].filename
    assert target.read_bytes() == PAYLOAD
    assert (data_root / "models" / "demucs" / "fake.yaml").is_file()
    listed = {s.spec.name: s for s in list_models()}
    fake = listed["fake"].files[0]
    assert fake.state is FileState.ok and fake.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert listed["htdemucs"].state == "missing"

    again: list[str] = []
    fetch_model("fake", client=serve(files, again))
    assert again == [], "valid files are not downloaded twice"
    fetch_model("fake", client=serve(files, again), force=True)
    assert len(again) == 2


def test_fetch_rejects_a_checksum_mismatch(data_root: Path, fake_model: weights.ModelSpec, serve) -> None:
    files = {fake_model.files[0].url: PAYLOAD + b"tampered", fake_model.files[1].url: PAYLOAD[::-1]}
    with pytest.raises(ModelError, match="does not start with the published"):
        fetch_model("fake", client=serve(files))
    directory = data_root / "models" / "demucs"
    assert not (directory / fake_model.files[0].filename).exists()
    assert _no_partials(directory)
    assert model_status("fake").state == "missing"


def test_a_broken_download_leaves_nothing_behind(data_root: Path, fake_model: weights.ModelSpec) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield PAYLOAD[:1000]
            raise httpx.ReadError("connection reset")

    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, stream=Broken())))
    with pytest.raises(ModelError, match="could not download .*--from DIR"):
        fetch_model("fake", client=client)
    directory = data_root / "models" / "demucs"
    assert not (directory / fake_model.files[0].filename).exists()
    assert _no_partials(directory)


def test_fetch_reports_http_errors(data_root: Path, fake_model: weights.ModelSpec, serve) -> None:
    with pytest.raises(ModelError, match="HTTP 404; nothing installed"):
        fetch_model("fake", client=serve({}))


def test_a_damaged_file_is_reported_by_list(data_root: Path, fake_model: weights.ModelSpec, serve) -> None:
    files = {fake_model.files[0].url: PAYLOAD, fake_model.files[1].url: PAYLOAD[::-1]}
    fetch_model("fake", client=serve(files))
    path = data_root / "models" / "demucs" / fake_model.files[1].filename
    path.write_bytes(b"bit rot")
    status = model_status("fake")
    assert status.state == "checksum mismatch" and not status.ready
    assert model_status("fake", verify=False).ready, "without hashing only presence is checked"
    fetch_model("fake", client=serve(files))
    assert model_status("fake").ready, "a second fetch repairs it"


def test_install_from_a_folder(data_root: Path, tmp_path: Path, fake_model: weights.ModelSpec) -> None:
    source = tmp_path / "usb"
    source.mkdir()
    (source / fake_model.files[0].filename).write_bytes(PAYLOAD)
    with pytest.raises(ModelError, match=f"no {fake_model.files[1].filename}"):
        install_from_dir("fake", source)
    (source / fake_model.files[1].filename).write_bytes(b"wrong")
    with pytest.raises(ModelError, match="does not start with the published"):
        install_from_dir("fake", source)
    (source / fake_model.files[1].filename).write_bytes(PAYLOAD[::-1])
    assert install_from_dir("fake", source).ready
    with pytest.raises(InvalidOptionError, match="not a directory"):
        install_from_dir("fake", tmp_path / "nowhere")
