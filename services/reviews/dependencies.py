"""Dependency providers of the reviews service: the edges tests may replace."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nameko.extensions import DependencyProvider

from plumbing import config
from services.reviews.storage import EvidenceStore

# Uploads larger than this are refused (``REVIEWS_MAX_UPLOAD_BYTES``).
DEFAULT_MAX_UPLOAD = 5 * 1024 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(DependencyProvider):
    """Gives ``self.now()``: the current UTC time. Tests replace it to place
    "today" against the milestones of a cycle."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        return utc_now


def evidence_dir(cfg: dict[str, Any]) -> Path:
    """``REVIEWS_EVIDENCE_DIR`` (container config, else environment), else
    ``DATA_DIR/evidence``."""
    chosen = cfg.get("REVIEWS_EVIDENCE_DIR") or os.environ.get("REVIEWS_EVIDENCE_DIR")
    if chosen:
        return Path(chosen)
    data_dir = cfg.get("DATA_DIR")
    base = Path(data_dir) if data_dir else config.data_dir()
    return base / "evidence"


def max_upload(cfg: dict[str, Any]) -> int:
    raw = cfg.get("REVIEWS_MAX_UPLOAD_BYTES") or os.environ.get(
        "REVIEWS_MAX_UPLOAD_BYTES"
    )
    return int(raw) if raw else DEFAULT_MAX_UPLOAD


class Evidence(DependencyProvider):
    """Gives ``self.evidence``: the :class:`EvidenceStore` of the folder
    configured by ``REVIEWS_EVIDENCE_DIR`` with the upload limit
    ``REVIEWS_MAX_UPLOAD_BYTES`` (default 5 MB)."""

    def setup(self) -> None:
        cfg = self.container.config
        self.store = EvidenceStore(evidence_dir(cfg), max_upload(cfg))

    def get_dependency(self, worker_ctx: Any) -> EvidenceStore:
        return self.store
