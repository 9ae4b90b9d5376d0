"""`stemscribe keys create|list|revoke` and `stemscribe purge`."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from stemscribe.cli import app, register_commands
from stemscribe.jobs.store import hash_key, open_store


def test_keys_lifecycle_and_purge(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("STEMSCRIBE_DATA_DIR", str(tmp_path))
    register_commands()
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--name", "ci"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    assert key.startswith("sk_") and len(key) > 40

    store = open_store(f"sqlite:///{tmp_path / 'stemscribe.db'}")
    (principal,) = store.list_keys()
    assert principal.key_hash == hash_key(key) and key not in (principal.key_prefix or "") + principal.name
    listed = runner.invoke(app, ["keys", "list"])
    assert principal.id in listed.stdout and "ci" in listed.stdout and key not in listed.stdout

    assert runner.invoke(app, ["keys", "revoke", "ci"]).exit_code == 0
    assert store.principal_for_key(key) is None
    missing = runner.invoke(app, ["keys", "revoke", "nobody"])
    assert missing.exit_code == 1 and "no single key" in missing.output
    assert runner.invoke(app, ["keys", "create", "--name", "  "]).exit_code == 1

    purged = runner.invoke(app, ["purge"])
    assert purged.exit_code == 0 and "purged 0 expired task(s)" in purged.stdout
    store.close()
