"""`stemscribe worker`: a Celery worker taking transcription, separation and callback tasks."""

from __future__ import annotations

from typing import Annotated

import typer

QUEUES = "transcribe,separate,callbacks"


def worker(
    concurrency: Annotated[
        int, typer.Option(help="Processes running tasks (each loads the models once; one per GPU).")
    ] = 1,
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to take tasks from (a GPU box: transcribe,separate).")
    ] = QUEUES,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork (default), solo or threads.")] = "prefork",
    log_level: Annotated[str, typer.Option(help="Celery log level.")] = "info",
) -> None:
    """Run a Celery worker on STEMSCRIBE_BROKER_URL, STEMSCRIBE_DATABASE_URL and STEMSCRIBE_STORAGE_URL."""
    from stemscribe.cluster.tasks import run_worker
    from stemscribe.errors import StemscribeError
    from stemscribe.jobs.broker import QUEUE_KINDS
    from stemscribe.settings import Settings

    settings = Settings()
    kinds = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(kinds) - set(QUEUE_KINDS))
    if not settings.broker_url or unknown or not kinds:
        why = (
            "STEMSCRIBE_BROKER_URL is not set (amqp://... or redis://...)"
            if not settings.broker_url
            else f"unknown queue(s) {', '.join(unknown) or '(none given)'}; "
            f"the queues are {', '.join(QUEUE_KINDS)}"
        )
        typer.echo(f"ConfigurationError: {why}", err=True)
        raise typer.Exit(1)
    try:
        run_worker(settings, concurrency=concurrency, queues=kinds, pool=pool, log_level=log_level)
    except (StemscribeError, OSError) as exc:
        typer.echo(f"{type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
