"""`S3Storage` against moto's S3 server: the `ArtifactStorage` contract, multipart uploads, prefixes."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from stemscribe.jobs.storage import ArtifactStorage, StorageError, open_storage, storage_for
from stemscribe.settings import Settings

from .conftest import s3_keys


@pytest.fixture
def fresh(bucket: str) -> str:
    """A bucket of this test alone (`bucket` points boto3 at moto's server)."""
    import boto3

    name = f"{bucket}-{secrets.token_hex(3)}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(fresh: str, tmp_path: Path) -> ArtifactStorage:
    return open_storage(f"s3://{fresh}/pre/fix", temp_dir=tmp_path / "spool")


def test_objects_round_trip_under_the_prefix(s3: ArtifactStorage, fresh: str) -> None:
    assert isinstance(s3, ArtifactStorage) and type(s3).__name__ == "S3Storage"
    assert s3.put_bytes("tasks/t1/result.json", b'{"a": 1}') == 8
    s3.put_bytes("tasks/t1/result.mid", b"MThd" + bytes(100))
    s3.put_bytes("tasks/t10/result.mid", b"other")
    assert s3.get_bytes("tasks/t1/result.json") == b'{"a": 1}'
    assert s3.exists("tasks/t1/result.mid") and not s3.exists("tasks/t1/nothing")
    assert s3.size("tasks/t1/result.mid") == 104 and s3.local_path("tasks/t1/result.mid") is None
    with s3.open("tasks/t1/result.mid") as f:
        assert b"".join(f) == b"MThd" + bytes(100)
    s3.put_bytes("tasks/t1/result.json", b"{}")  # a re-run overwrites
    assert s3.get_bytes("tasks/t1/result.json") == b"{}"
    assert s3_keys(fresh, "") == [
        "pre/fix/tasks/t1/result.json",
        "pre/fix/tasks/t1/result.mid",
        "pre/fix/tasks/t10/result.mid",
    ]
    assert s3.delete_prefix("tasks/t1") == 2  # not t10
    assert s3_keys(fresh, "") == ["pre/fix/tasks/t10/result.mid"]
    for missing in (lambda: s3.get_bytes("tasks/t1/result.json"), lambda: s3.size("tasks/t1/x")):
        with pytest.raises(StorageError):
            missing()
    with pytest.raises(StorageError):
        s3.put_bytes("../escape", b"x")


def test_a_large_upload_goes_in_parts_and_its_spool_file_is_consumed(s3: ArtifactStorage, fresh: str) -> None:
    import boto3

    tmp = s3.temp_file()
    data = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MiB: three 8 MiB parts
    tmp.write_bytes(data)
    assert s3.put_file("audio/a1/original", tmp) == len(data)
    assert not tmp.exists()
    head = boto3.client("s3").head_object(Bucket=fresh, Key="pre/fix/audio/a1/original")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag counts its parts
    assert s3.get_bytes("audio/a1/original") == data


def test_storage_comes_from_the_settings(fresh: str, tmp_path: Path) -> None:
    local = storage_for(Settings(data_dir=tmp_path))
    assert type(local).__name__ == "LocalStorage"
    remote = storage_for(Settings(data_dir=tmp_path, storage_url=f"s3://{fresh}"))
    remote.put_bytes("k", b"v")
    assert s3_keys(fresh, "") == ["k"]
    with pytest.raises(StorageError, match="unknown storage URL scheme"):
        open_storage("gs://bucket/x")


def test_downloads_from_the_bucket_are_named_like_local_files(fresh: str, tmp_path: Path) -> None:
    """The same Content-Disposition (and a Content-Length) whether a file streams from the bucket or
    is sent from local disk: the upload, and its signed link."""
    import io
    import time

    import numpy as np
    import soundfile as sf
    from fastapi.testclient import TestClient

    from stemscribe.service import create_app

    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000, dtype=np.float32), 8000, format="WAV")
    answers = {}
    for where in ("local", "bucket"):
        settings = Settings(
            data_dir=tmp_path / where,
            workers=0,
            secret_key="k",
            storage_url=f"s3://{fresh}/downloads" if where == "bucket" else None,
        )
        with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
            assert type(client.app.state.ctx.storage).__name__ == (
                "S3Storage" if where == "bucket" else "LocalStorage"
            )  # type: ignore[attr-defined]
            up = client.post(
                "/v1/uploads", files={"file": ("My Song é.wav", buf.getvalue(), "audio/wav")}
            ).json()
            ctx = client.app.state.ctx  # type: ignore[attr-defined]
            link = ctx.link(
                "http://testserver", "audio", up["id"], time.time() + 600
            )  # the dialects' audio_url
            answers[where] = [client.get(up["audio_url"]), client.get(link)]
    for got in answers["bucket"] + answers["local"]:
        assert got.status_code == 200 and got.content == buf.getvalue()
        assert got.headers["content-length"] == str(len(buf.getvalue()))
        assert got.headers["content-disposition"] == "attachment; filename*=utf-8''My%20Song%20%C3%A9.wav"
