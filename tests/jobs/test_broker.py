"""Scale-out's configuration: what the environment chooses, Celery set not to lose work, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stemscribe.cli import app, register_commands
from stemscribe.errors import ConfigurationError
from stemscribe.jobs.models import TaskKind
from stemscribe.jobs.runner import LocalRunner
from stemscribe.service import create_app
from stemscribe.settings import Settings

celery = pytest.importorskip("celery", reason="the scale extra (celery) is not installed")


def test_no_scale_variables_means_the_embedded_runner(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, workers=1, worker_threads=True)
    assert not settings.scale_out and settings.resolved_redis_url is None
    application = create_app(settings)
    assert isinstance(application.state.ctx.runner, LocalRunner)
    assert type(application.state.ctx.storage).__name__ == "LocalStorage"
    application.state.ctx.store.close()


def test_scale_out_needs_one_signing_key_for_all_nodes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url="amqp://guest:guest@127.0.0.1:1//")
    with pytest.raises(ConfigurationError, match="STEMSCRIBE_SECRET_KEY"):
        create_app(settings)


def test_the_broker_chooses_the_celery_runner_and_its_queues(tmp_path: Path) -> None:
    from stemscribe.jobs.broker import CeleryRunner, task_queue

    settings = Settings(
        data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0", secret_key="s", queue_prefix="prod"
    )
    assert settings.resolved_redis_url == "redis://127.0.0.1:1/0"  # the broker's Redis holds the limits
    application = create_app(settings)  # nothing connects until a task is sent
    runner = application.state.ctx.runner
    assert isinstance(runner, CeleryRunner)
    assert task_queue(settings, TaskKind.SEPARATE) == "prod.separate"
    assert task_queue(settings, TaskKind.TRANSCRIBE) == "prod.transcribe"
    application.state.ctx.store.close()


def test_celery_is_set_not_to_lose_work() -> None:
    from stemscribe.jobs.broker import make_celery

    conf = make_celery(Settings(broker_url="amqp://guest:guest@127.0.0.1:1//")).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_default_delivery_mode == "persistent"
    assert conf.broker_transport_options == {"confirm_publish": True}
    assert {q.name for q in conf.task_queues} == {
        "stemscribe.transcribe",
        "stemscribe.separate",
        "stemscribe.callbacks",
    }
    assert all(q.durable for q in conf.task_queues)
    assert conf.result_backend is None and conf.task_ignore_result


def test_worker_command_refuses_without_a_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMSCRIBE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("STEMSCRIBE_BROKER_URL", raising=False)
    register_commands()
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 1 and "STEMSCRIBE_BROKER_URL is not set" in result.output
    monkeypatch.setenv("STEMSCRIBE_BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")
    result = CliRunner().invoke(app, ["worker", "--queues", "transcribe,gpu"])
    assert result.exit_code == 1 and "unknown queue(s) gpu" in result.output
