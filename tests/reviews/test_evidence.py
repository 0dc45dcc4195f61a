"""Evidence: files checked by content and kept outside the database, links,
and downloads checked like reads."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from plumbing.errors import NotFound, PlatformError
from services.reviews import events, evidence, objectives
from services.reviews.models import Evidence
from services.reviews.storage import EvidenceStore, sniff
from tests.service_support import outbox

from .conftest import T0
from .support import add_objective, open_elm_cycle, review_at, review_of

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def docx_bytes() -> bytes:
    """The same bytes on every call: a fixed time in the zip headers (the
    current one made two calls a second apart differ)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (
            ("[Content_Types].xml", "<Types/>"),
            ("word/document.xml", "<document/>"),
        ):
            archive.writestr(
                zipfile.ZipInfo(name, date_time=(2030, 1, 1, 0, 0, 0)), text
            )
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path / "evidence", max_bytes=64 * 1024)


def upload(db, store, person, target_type, target_id, filename, content, **extra):
    data = {
        "target_type": target_type,
        "target_id": target_id,
        "filename": filename,
        "content_base64": base64.b64encode(content).decode(),
        **extra,
    }
    return evidence.upload_evidence(db, person.identity, data, store, now=T0)


def stored_rows(db) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(Evidence))


def files_in(store: EvidenceStore) -> list[Path]:
    return (
        [p for p in store.root.rglob("*") if p.is_file()] if store.root.exists() else []
    )


def test_an_upload_is_kept_outside_the_database_with_its_checksum(db, world, store):
    """The PDF lands in the evidence folder; the row holds its SHA-256 and type."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    kept = upload(db, store, world.tom, "review", review["id"], "plan.pdf", PDF)
    assert kept["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert kept["content_type"] == "application/pdf"
    [path] = files_in(store)
    assert path.read_bytes() == PDF
    [event] = outbox(db, events.EVIDENCE_UPLOADED)
    assert event["changes"]["filename"]["after"] == "plan.pdf"


@pytest.mark.parametrize(
    "filename, content, code",
    [
        ("big.pdf", PDF + b"x" * 70_000, "UPLOAD_TOO_LARGE"),
        ("tool.pdf", b"MZ\x90\x00\x03" + b"\x00" * 60, "UPLOAD_TYPE_NOT_ALLOWED"),
        ("photo.png", PDF, "UPLOAD_TYPE_NOT_ALLOWED"),
        ("notes.docx", b"PK\x03\x04not really a zip", "UPLOAD_TYPE_NOT_ALLOWED"),
    ],
)
def test_a_bad_upload_stores_nothing(db, world, store, filename, content, code):
    """Too large, an executable, a PDF named .png, a fake docx: no row, no file."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    with pytest.raises(PlatformError) as caught:
        upload(db, store, world.tom, "review", review["id"], filename, content)
    assert caught.value.code == code
    assert stored_rows(db) == 0 and files_in(store) == []
    assert outbox(db, events.EVIDENCE_UPLOADED) == []


def test_a_wrong_checksum_from_the_client_is_refused(db, world, store):
    """A sha256 that does not match the bytes is UPLOAD_CHECKSUM_MISMATCH."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    with pytest.raises(PlatformError) as caught:
        upload(
            db, store, world.tom, "review", review["id"], "a.pdf", PDF, sha256="0" * 64
        )
    assert caught.value.code == "UPLOAD_CHECKSUM_MISMATCH"
    assert files_in(store) == []


def test_content_sniffing_knows_the_accepted_types():
    """PDF, PNG, JPEG, GIF, docx and UTF-8 text are known; binary noise is not."""
    assert sniff(PDF) == "pdf"
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff(b"\xff\xd8\xff\xe0....") == "jpeg"
    assert sniff(b"GIF89a....") == "gif"
    assert sniff(docx_bytes()) == "docx"
    assert sniff("Notes, café".encode()) == "text"
    assert sniff(b"\x00\x01\x02\xfe") is None


def test_download_is_checked_like_a_read_and_against_the_checksum(db, world, store):
    """Margo downloads Tom's file; Tina gets NotFound; a tampered file is refused."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    objective = add_objective(db, world.margo, review)
    kept = upload(
        db, store, world.tom, "objective", objective["id"], "a.docx", docx_bytes()
    )
    listed = objectives.get_objective(db, world.tom.identity, objective["id"])
    assert [e["id"] for e in listed["evidence"]] == [kept["id"]]
    got = evidence.download_evidence(db, world.margo.identity, kept["id"], store)
    assert base64.b64decode(got["content_base64"]) == docx_bytes()
    assert len(outbox(db, events.EVIDENCE_DOWNLOADED)) == 1
    with pytest.raises(NotFound):
        evidence.download_evidence(db, world.tina.identity, kept["id"], store)
    store.path_of(kept["id"]).write_bytes(b"changed")
    with pytest.raises(PlatformError) as caught:
        evidence.download_evidence(db, world.margo.identity, kept["id"], store)
    assert caught.value.code == "EVIDENCE_UNAVAILABLE"


def test_links_attach_to_observations_and_are_listed(db, world, store):
    """The observed teacher links a resource to a shared observation."""
    from services.reviews import observations

    made = observations.create_observation(
        db,
        world.margo.identity,
        {
            "type": "drop_in",
            "observed_id": world.tom.id,
            "observed_on": "2030-11-12",
            "focus": "Behaviour",
        },
        now=T0,
    )
    observations.share_observation(db, world.margo.identity, made["id"], now=T0)
    link = {
        "target_type": "observation",
        "target_id": made["id"],
        "url": "https://example.org/plan",
        "title": "Seating plan",
    }
    evidence.link_evidence(db, world.tom.identity, link, now=T0)
    listed = evidence.list_evidence(db, world.margo.identity, "observation", made["id"])
    assert [e["url"] for e in listed["items"]] == ["https://example.org/plan"]
    with pytest.raises(NotFound):
        evidence.list_evidence(db, world.tina.identity, "observation", made["id"])


def test_nothing_is_added_to_a_closed_review(db, world, store):
    """Uploading to a closed review is REVIEW_CLOSED and leaves no file."""
    cycle = open_elm_cycle(db, world)
    review = review_at(db, world, cycle, "closed")
    with pytest.raises(PlatformError) as caught:
        upload(db, store, world.tom, "review", review["id"], "late.pdf", PDF)
    assert caught.value.code == "REVIEW_CLOSED"
    assert files_in(store) == []
