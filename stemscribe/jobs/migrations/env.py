"""Alembic environment: online migrations against the URL set in the Config (see `alembic_config`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from stemscribe.jobs.models import Base

MIGRATION_LOCK = 0x5732_6D69
"""PostgreSQL advisory lock taken while migrating, so API nodes and workers starting together
migrate one after another instead of racing to create the same tables."""

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(str(config.get_main_option("sqlalchemy.url")), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
