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
