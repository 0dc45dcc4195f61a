"""Each service's migrations build exactly the schema its models describe,
so a model changed without a migration (or the reverse) fails here rather
than on an operator's first upgrade."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine

from plumbing.outbox import outbox_metadata

SERVICES = ["auth", "audit", "training", "reviews", "notify"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_migrated_database_matches_the_models(
    make_database: Callable[[str], str], service: str
) -> None:
    """Alembic finds no table, column, index or type to add or remove."""
    models = importlib.import_module(f"services.{service}.models")
    expected = MetaData()
    for metadata in (models.Base.metadata, outbox_metadata):
        for table in metadata.tables.values():
            table.to_metadata(expected)
    engine = create_engine(make_database(service))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(
                MigrationContext.configure(connection), expected
            )
    finally:
        engine.dispose()
    assert differences == []
