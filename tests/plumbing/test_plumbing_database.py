"""The engine every service process gets: its PostgreSQL connections are
bounded by settings an operator can size against ``max_connections``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import exc

from plumbing.database import make_engine


def test_a_process_opens_no_more_connections_than_its_pool_allows(
    make_empty_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DB_POOL_SIZE plus DB_MAX_OVERFLOW connections can be held at once; one
    more waits for a free one and, when none comes, times out."""
    monkeypatch.setenv("DB_POOL_SIZE", "2")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "1")
    engine = make_engine(make_empty_database(), pool_timeout=0.5)
    held = [engine.connect() for _ in range(3)]
    try:
        with pytest.raises(exc.TimeoutError):
            engine.connect()
    finally:
        for connection in held:
            connection.close()
        engine.dispose()


@pytest.mark.parametrize(
    ("key", "value"), [("DB_POOL_SIZE", "0"), ("DB_MAX_OVERFLOW", "lots")]
)
def test_pool_settings_that_make_no_sense_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    """A pool of no connections, or a size that is not a number, stops the
    process at start-up with the setting's name."""
    monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=key):
        make_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
