"""The audit service: keeps every event of every service in a hash-chained,
append-only log, and answers auditors' and admins' questions about it.

Events arrive through the ingestion loop (:mod:`services.audit.ingest`), not
through an entrypoint here. Every read or export below is itself recorded as
an ``audit.log_read`` / ``audit.log_exported`` event, emitted through this
service's outbox so that it reaches the chain like any other event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from plumbing.identity import CallerIdentity, Identity, anonymous, authenticated, deny
from plumbing.logging import LogContext
from plumbing.rpc import rpc
from services.audit import crypto, events, export, queries, schemas
from services.audit.dependencies import AuditDatabase, Ingestion
from services.audit.exceptions import AuditAccessDenied, SubjectNotFound
from services.audit.models import LogEntry, SubjectKey


class AuditService:
    name = "audit"

    db = AuditDatabase("audit")
    caller = CallerIdentity()
    log = LogContext("audit")
    ingestion = Ingestion()

    @rpc
    @anonymous
    def ping(self) -> dict[str, Any]:
        """Readiness: answers while the service runs."""
        return {"service": "audit", "ok": True}

    @rpc
    @anonymous
    def public_key(self) -> dict[str, str]:
        """The PEM public key that checkpoints and export seals verify with."""
        key = self.ingestion.signing_key
        return {"public_key": crypto.public_key_pem(key), "key_id": crypto.key_id(key)}

    @rpc
    @authenticated
    def list_logins(
        self,
        caller: Identity,
        filters: dict[str, Any] | None = None,
        cursor: int | None = None,
        limit: int = 50,
        order: str = "newest",
    ) -> dict[str, Any]:
        """The login log of the caller's organisations (auditor or admin).

        Filters: user_id, outcome, reason, ip, since, until, org_id. Newest or
        oldest first, by seq; ``next_cursor`` fetches the next page. Emits
        ``audit.log_read``.
        """
        orgs = self._reader_orgs(caller, "list_logins")
        found = schemas.load(schemas.LoginFiltersSchema(), filters)
        page = schemas.load(
            schemas.PageSchema(), {"cursor": cursor, "limit": limit, "order": order}
        )
        result = queries.list_logins(self.db, orgs, found, page)
        self._record_read(caller, events.LOG_READ, "list_logins", found)
        return result

    @rpc
    @authenticated
    def list_changes(
        self,
        caller: Identity,
        filters: dict[str, Any] | None = None,
        cursor: int | None = None,
        limit: int = 50,
        order: str = "newest",
    ) -> dict[str, Any]:
        """The change log of the caller's organisations (auditor or admin),
        each change's before and after decrypted where the key still exists.

        Filters: entity_type, entity_id, actor_user_id, type, since, until,
        org_id. Emits ``audit.log_read``.
        """
        orgs = self._reader_orgs(caller, "list_changes")
        found = schemas.load(schemas.ChangeFiltersSchema(), filters)
        page = schemas.load(
            schemas.PageSchema(), {"cursor": cursor, "limit": limit, "order": order}
        )
        result = queries.list_changes(self.db, orgs, found, page)
        self._record_read(caller, events.LOG_READ, "list_changes", found)
        return result

    @rpc
    @authenticated
    def export(
        self,
        caller: Identity,
        from_seq: int = 1,
        to_seq: int | None = None,
        format: str = "jsonl",
        cursor: str | None = None,
        limit: int = 1000,
    ) -> dict[str, Any]:
        """One page of an export (``jsonl`` or ``csv``); call again with
        ``next_cursor`` until it is None and concatenate the ``chunk``s.
        Entries outside the caller's organisations appear only as redacted
        links. Emits ``audit.log_exported`` for every page.
        """
        orgs = self._reader_orgs(caller, "export")
        params = schemas.load(
            schemas.ExportSchema(),
            {
                "from_seq": from_seq,
                "to_seq": to_seq,
                "format": format,
                "cursor": cursor,
                "limit": limit,
            },
        )
        page = export.export_page(self.db, self.ingestion.signing_key, orgs, params)
        self._record_read(
            caller,
            events.LOG_EXPORTED,
            "export",
            {
                "from_seq": page["from_seq"],
                "to_seq": page["to_seq"],
                "format": page["format"],
                "cursor": cursor,
                "entries": page["entries"],
            },
        )
        return page

    @rpc
    @authenticated
    def list_checkpoints(
        self,
        caller: Identity,
        cursor: int | None = None,
        limit: int = 100,
        order: str = "newest",
    ) -> dict[str, Any]:
        """Signed checkpoints, as export records. Emits ``audit.log_read``."""
        self._reader_orgs(caller, "list_checkpoints")
        page = schemas.load(
            schemas.PageSchema(), {"cursor": cursor, "limit": limit, "order": order}
        )
        result = queries.list_checkpoints(
            self.db, page["cursor"], page["limit"], page["order"]
        )
        self._record_read(caller, events.LOG_READ, "list_checkpoints", {})
        return result

    @rpc
    @authenticated
    def verify_chain(self, caller: Identity) -> dict[str, Any]:
        """Check the whole stored chain and its checkpoints; report the first
        bad seq if any. Emits ``audit.log_read``."""
        self._reader_orgs(caller, "verify_chain")
        public = self.ingestion.signing_key.public_key()
        result = queries.verify_stored_chain(self.db, public)
        self._record_read(caller, events.LOG_READ, "verify_chain", {})
        return result

    @rpc
    @authenticated
    def list_dead_letters(
        self, caller: Identity, cursor: int | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """Messages that could not be stored (metadata only; the bodies are in
        the ``audit.dead_letters`` queue), with their total count."""
        self._reader_orgs(caller, "list_dead_letters")
        page = schemas.load(schemas.PageSchema(), {"cursor": cursor, "limit": limit})
        result = queries.list_dead_letters(self.db, page["cursor"], page["limit"])
        result["ingestion"] = self.ingestion.ingestor.stats.as_dict()
        return result

    @rpc
    @authenticated
    def erase_subject_key(
        self, caller: Identity, subject_type: str, subject_id: str
    ) -> dict[str, Any]:
        """Destroy a data subject's key (school or trust admin of an
        organisation where the subject appears): their personal values become
        unreadable, the chain still verifies. Emits ``audit.subject_key_erased``.
        """
        found = schemas.load(
            schemas.EraseSubjectSchema(),
            {"subject_type": subject_type, "subject_id": subject_id},
        )
        org_id = self._subject_org(caller, found["subject_type"], found["subject_id"])
        subject = f"{found['subject_type']}:{found['subject_id']}"
        now = datetime.now(UTC)
        key = self.db.query(SubjectKey).filter(SubjectKey.subject == subject).first()
        if key is None:
            key_id, _ = crypto.new_subject_key()
            key = SubjectKey(key_id=key_id, subject=subject, key=None, created_at=now)
            self.db.add(key)
        key.key = None
        key.erased_at = now
        key.erased_by = caller.user_id
        self.db.emit(
            events.SUBJECT_KEY_ERASED,
            subject_type=found["subject_type"],
            subject_id=found["subject_id"],
            org_id=org_id,
            data={"key_id": key.key_id},
        )
        self.db.commit()
        return {"subject": subject, "key_id": key.key_id, "erased_at": now.isoformat()}

    # -- helpers -----------------------------------------------------------

    def _reader_orgs(self, caller: Identity, action: str) -> set[str]:
        try:
            return queries.require_reader(caller)
        except AuditAccessDenied:
            deny(
                self.db,
                caller,
                subject_type="audit_log",
                subject_id=action,
                action=action,
            )
            raise

    def _subject_org(self, caller: Identity, subject_type: str, subject_id: str) -> str:
        orgs = queries.visible_orgs(caller, queries.ADMIN_ROLES)
        org_id = (
            self.db.query(LogEntry.org_id)
            .filter(
                LogEntry.subject_type == subject_type,
                LogEntry.subject_id == subject_id,
                LogEntry.org_id.in_(sorted(orgs)),
            )
            .limit(1)
            .scalar()
        )
        if org_id is None:
            deny(
                self.db,
                caller,
                subject_type=subject_type,
                subject_id=subject_id,
                action="erase_subject_key",
            )
            raise SubjectNotFound()
        return org_id

    def _record_read(
        self, caller: Identity, type_: str, action: str, details: dict[str, Any]
    ) -> None:
        self.db.rollback()
        self.db.emit(
            type_,
            subject_type="audit_log",
            subject_id=action,
            org_id=caller.org_id,
            data={"action": action, "query": _plain(details)},
        )
        self.db.commit()


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in details.items()
        if value is not None
    }
