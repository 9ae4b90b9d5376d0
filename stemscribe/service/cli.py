"""`stemscribe serve`, `stemscribe keys create|list|revoke`, `stemscribe purge`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from stemscribe.settings import Settings

keys_app = typer.Typer(help="Manage API keys (only their sha256 is stored).", no_args_is_help=True)


def _settings(**overrides: Any) -> Settings:
    from stemscribe.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _store():  # type: ignore[no-untyped-def]
    """The store of STEMSCRIBE_DATABASE_URL; with Redis (scale-out), key changes made through it
    end every API node's cached lookups at once (see `limits.RedisKeyEpoch`)."""
    from stemscribe.jobs.store import open_store

    settings = _settings()
    settings.ensure_dirs()
    store = open_store(settings.resolved_database_url)
    if settings.resolved_redis_url:
        from stemscribe.service.limits import RedisKeyEpoch

        store.on_keys_changed = RedisKeyEpoch(
            settings.resolved_redis_url, namespace=settings.queue_prefix
        ).bump
    return store


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; a loopback address allows token-less local use.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: STEMSCRIBE_WORKERS or 1).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the API server (FastAPI under uvicorn) with its workers, on the embedded defaults; with
    STEMSCRIBE_BROKER_URL set, an API node whose jobs run in `stemscribe worker` processes."""
    import uvicorn

    from stemscribe.errors import StemscribeError
    from stemscribe.service.app import create_app

    settings = _settings(host=host, port=port, workers=workers)
    try:
        app = create_app(settings)
    except (StemscribeError, OSError) as exc:
        typer.echo(f"{type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    auth = (
        "Bearer key required"
        if settings.require_auth or not settings.binds_loopback or app.state.ctx.keys_exist()
        else "no key yet: loopback requests without a token act as 'local'"
    )
    where = (
        "jobs to Celery at STEMSCRIBE_BROKER_URL (run `stemscribe worker`)"
        if settings.scale_out
        else f"{settings.workers} worker(s)"
    )
    typer.echo(f"stemscribe: data in {settings.data_dir}; {where}; {auth}", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option("--name", help="A label for the key.")]) -> None:
    """Create a key and print it (shown once) with its webhook signing secret."""
    store = _store()
    try:
        principal, key = store.create_key(name)
    except ValueError as exc:
        typer.echo(f"ValueError: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(key)
    typer.echo(f"id: {principal.id}  name: {principal.name}", err=True)
    typer.echo(f"webhook secret (verifies callbacks): {principal.webhook_secret}", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys: id, name, prefix, created, revoked."""
    store = _store()
    try:
        keys = store.list_keys()
    finally:
        store.close()
    for p in keys:
        typer.echo(
            f"{p.id}\t{p.name}\t{p.key_prefix}…\tcreated {_when(p.created_at)}\trevoked {_when(p.revoked_at)}"
        )


@keys_app.command("revoke")
def keys_revoke(ident: Annotated[str, typer.Argument(help="The key's id, name or prefix.")]) -> None:
    """Revoke a key; requests with it answer 403 from then on."""
    store = _store()
    try:
        principal = store.revoke_key(ident)
    finally:
        store.close()
    if principal is None:
        typer.echo(f"LookupError: no single key matches {ident!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {principal.id} ({principal.name})")


def purge() -> None:
    """Delete the files of expired results and uploads (the server also does this every hour)."""
    from stemscribe.jobs.storage import storage_for
    from stemscribe.service.context import ServiceContext

    settings = _settings()
    settings.ensure_dirs()
    from stemscribe.jobs.store import open_store

    store = open_store(settings.resolved_database_url)
    try:
        tasks, audios = ServiceContext(settings, store, storage_for(settings)).purge()
    finally:
        store.close()
    typer.echo(f"purged {tasks} expired task(s) and {audios} audio file(s)")


def register(app: typer.Typer) -> None:
    """Add the service's commands to the `stemscribe` CLI."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
    app.command("purge")(purge)
