"""Alembic environment: runs on the connection :meth:`SqlStore.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from orgauthz.store.models import Base

target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic` command line: connect from the URL
        url = config.attributes.get("connection_url") or config.get_main_option("sqlalchemy.url")
        with create_engine(str(url)).begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    context.run_migrations()


run()
