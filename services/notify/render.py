"""Rendering messages with Jinja2: titles and in-app text from the strings of
:mod:`catalogue`, email parts from the files in ``templates/``.

HTML templates are autoescaped, so a course title or a reason typed by a
person cannot inject markup. Plain-text parts and titles are not escaped.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    Environment,
    FileSystemLoader,
    Template,
    TemplateNotFound,
    select_autoescape,
)

from services.notify.catalogue import KINDS

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def _files() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@functools.cache
def _string(source: str) -> Template:
    """A catalogue string, compiled once: compiling costs far more than
    rendering, and the catalogue is fixed."""
    return _strings().from_string(source)


@functools.cache
def _strings() -> Environment:
    return Environment(autoescape=False)


def title_and_text(kind: str, params: dict[str, Any]) -> tuple[str, str]:
    """The one-line title (also the email subject) and the in-app text."""
    found = KINDS[kind]
    title = " ".join(_string(found.title).render(params).split())
    text = " ".join(_string(found.text).render(params).split())
    return title[:300], text


def email_parts(kind: str, params: dict[str, Any]) -> tuple[str, str]:
    """The plain-text and HTML parts of an email of ``kind``."""
    files = _files()
    parts = []
    for suffix in ("txt", "html"):
        try:
            template = files.get_template(f"{kind}.{suffix}")
        except TemplateNotFound:
            template = files.get_template(f"notice.{suffix}")
        parts.append(template.render(params))
    return parts[0], parts[1]


def local_time(value: str | datetime, timezone: str | None) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    try:
        return when.astimezone(ZoneInfo(timezone or "Europe/London"))
    except ZoneInfoNotFoundError:
        return when.astimezone(ZoneInfo("Europe/London"))


def when(value: str | datetime, timezone: str | None) -> str:
    """``Tue 12 Jan 2031, 09:00`` in the school's time zone."""
    return local_time(value, timezone).strftime("%a %d %b %Y, %H:%M")


def session_line(session: dict[str, Any], timezone: str | None) -> str:
    """``Tue 12 Jan 2031, 09:00 to 12:00, Main hall`` (school time)."""
    starts = local_time(session["starts_at"], timezone)
    ends = local_time(session["ends_at"], timezone)
    end_text = (
        ends.strftime("%H:%M")
        if ends.date() == starts.date()
        else ends.strftime("%a %d %b %Y, %H:%M")
    )
    line = f"{starts.strftime('%a %d %b %Y, %H:%M')} to {end_text}"
    place = session.get("venue") or session.get("online_link")
    return f"{line}, {place}" if place else line


def day(value: str | date) -> str:
    """``Fri 31 Oct 2031``."""
    found = value if isinstance(value, date) else date.fromisoformat(value)
    return found.strftime("%a %d %b %Y")
