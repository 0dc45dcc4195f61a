"""Evidence files, kept outside the database.

A file is checked before it is kept: its size against the limit, its type by
its content (magic bytes, not its name or the type the client claims), and
the name's extension against that type. It is stored under its evidence id
in a two-level folder, written to a temporary name, flushed and renamed, so a
reader never sees half a file; the SHA-256 kept in the database is checked
again on every read.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from services.reviews.exceptions import (
    EvidenceUnavailable,
    UploadTooLarge,
    UploadTypeNotAllowed,
)

# Each accepted type: its MIME type and the extensions a name may have.
ALLOWED_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pdf": ("application/pdf", (".pdf",)),
    "png": ("image/png", (".png",)),
    "jpeg": ("image/jpeg", (".jpg", ".jpeg")),
    "gif": ("image/gif", (".gif",)),
    "docx": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        (".docx",),
    ),
    "xlsx": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        (".xlsx",),
    ),
    "pptx": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        (".pptx",),
    ),
    "text": ("text/plain", (".txt", ".csv", ".md")),
}

_OFFICE_PARTS = {"docx": "word/", "xlsx": "xl/", "pptx": "ppt/"}


def sniff(content: bytes) -> str | None:
    """The kind of ``content`` judged by its bytes, or None if not accepted."""
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if content.startswith(b"PK\x03\x04"):
        return _office_kind(content)
    if b"\x00" not in content:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text"
    return None


def _office_kind(content: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    for kind, prefix in _OFFICE_PARTS.items():
        if any(name.startswith(prefix) for name in names):
            return kind
    return None


@dataclass(frozen=True)
class CheckedFile:
    filename: str
    content_type: str
    size: int
    sha256: str


def safe_filename(filename: str) -> str:
    """The last part of a client's file name, without folders."""
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    if not name or name in {".", ".."}:
        raise UploadTypeNotAllowed("The file needs a name", code="UPLOAD_NAME_INVALID")
    return name[:255]


class EvidenceStore:
    """The evidence folder and the upload limit."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def check(self, filename: str, content: bytes) -> CheckedFile:
        """Size, type by content, and name against type; raise if any fails."""
        if len(content) > self.max_bytes:
            raise UploadTooLarge(
                f"Files may be at most {self.max_bytes} bytes",
                fields={"max_bytes": self.max_bytes},
            )
        name = safe_filename(filename)
        kind = sniff(content)
        if kind is None:
            raise UploadTypeNotAllowed(
                "Accepted: PDF, PNG, JPEG, GIF, Word, Excel, PowerPoint, plain text"
            )
        content_type, extensions = ALLOWED_TYPES[kind]
        if not name.lower().endswith(extensions):
            raise UploadTypeNotAllowed(
                "The file's content does not match its name",
                fields={"detected": kind, "expected_extensions": list(extensions)},
            )
        digest = hashlib.sha256(content).hexdigest()
        return CheckedFile(name, content_type, len(content), digest)

    def path_of(self, evidence_id: str) -> Path:
        return self.root / evidence_id[:2] / evidence_id

    def save(self, evidence_id: str, content: bytes) -> Path:
        """Write the file whole, or not at all."""
        path = self.path_of(evidence_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(path.name + ".part")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return path

    def discard(self, evidence_id: str) -> None:
        self.path_of(evidence_id).unlink(missing_ok=True)

    def read(self, evidence_id: str, sha256: str) -> bytes:
        """The file's bytes, checked against the checksum kept at upload."""
        try:
            content = self.path_of(evidence_id).read_bytes()
        except OSError:
            raise EvidenceUnavailable() from None
        if hashlib.sha256(content).hexdigest() != sha256:
            raise EvidenceUnavailable()
        return content
