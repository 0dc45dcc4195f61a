"""How amounts, hours and times are written in answers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

CENTS = Decimal("0.01")


def money(value: Decimal | int | float | None) -> str:
    """Money as a string with two decimals, never a float: ``"12.50"``."""
    return str(Decimal(value or 0).quantize(CENTS))


def hours(value: Decimal | int | float | None) -> float:
    return float(Decimal(value or 0).quantize(CENTS))


def local(moment: datetime | None, timezone: str) -> str | None:
    """A UTC time as an ISO string in the school's time zone."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(timezone)).isoformat()
