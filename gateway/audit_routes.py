"""The audit log's HTTP face, for security reviewers: a mixin of routes that
the gateway service class takes among its bases.

Every route asks the audit service, which decides who may read what: users
with ``auditor``, ``school_admin`` or ``trust_admin`` see the entries of the
organisations those roles cover (a trust-level role covers the trust and its
schools), anyone else is answered 403 ``AUDIT_ACCESS_DENIED`` and the
refusal is logged as ``authz.denied``. Every read, export page and check is
itself logged by the audit service (``audit.log_read``,
``audit.log_exported``).

Pages are cursor pages by sequence number: pass a page's ``next_cursor`` as
``cursor`` to get the next one (``null`` on the last page), ``order`` is
``newest`` (default) or ``oldest``, ``limit`` at most 100.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import structlog
from werkzeug.wrappers import Response

from gateway.audit_schemas import (
    AuditChangePageSchema,
    AuditChangeQuerySchema,
    AuditCheckpointPageSchema,
    AuditCheckpointQuerySchema,
    AuditDeadLetterPageSchema,
    AuditDeadLetterQuerySchema,
    AuditEraseKeySchema,
    AuditExportQuerySchema,
    AuditKeyErasedSchema,
    AuditLoginPageSchema,
    AuditLoginQuerySchema,
    AuditPublicKeySchema,
    AuditVerifySchema,
)
from gateway.dependencies import Deny, GatewayRpc
from gateway.http import route
from gateway.problems import describe
from plumbing.errors import Forbidden, ValidationFailed
from plumbing.identity import Identity

log = structlog.get_logger()

PAGE_KEYS = ("cursor", "limit", "order")
# Entries per export RPC; each page is one RPC and one audit.log_exported.
EXPORT_PAGE = 1000
EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
# The dead letters are not tied to an organisation: only trust-wide admins.
DEAD_LETTER_ROLES = ("trust_admin",)


class DeadLettersForbidden(Forbidden):
    code = "DEAD_LETTERS_FORBIDDEN"
    title = "Only a trust admin may read the audit dead letters"


def _rpc_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def split_query(query: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A loaded list query as (filters, page) for the audit RPCs."""
    filters = {
        key: _rpc_value(value)
        for key, value in query.items()
        if key not in PAGE_KEYS and value is not None
    }
    page = {key: query[key] for key in PAGE_KEYS if query.get(key) is not None}
    return filters, page


def export_chunks(audit_rpc: Any, page: dict[str, Any]) -> Iterator[bytes]:
    """The chunks of an export from its first page on, asking for each next
    page as the last one is sent. This runs after the worker has answered,
    with the audit proxy the worker was given (taken before it ended)."""
    while True:
        yield page["chunk"].encode("utf-8")
        if page["next_cursor"] is None:
            return
        try:
            page = audit_rpc.export(
                from_seq=page["from_seq"],
                to_seq=page["to_seq"],
                format=page["format"],
                cursor=page["next_cursor"],
                limit=EXPORT_PAGE,
            )
        except Exception as error:  # noqa: BLE001 (the status is sent; end the stream)
            log.error("audit_export_interrupted", error=describe(error))
            return


class AuditRoutes:
    """Routes under ``/api/v1/audit``; mixed into the gateway service class,
    whose ``request_context`` and ``deny`` dependencies they use."""

    audit_rpc = GatewayRpc("audit")
    # Declared by the gateway service class; only its type is given here.
    deny: Deny

    @route(
        "GET",
        "/api/v1/audit/logins",
        query=AuditLoginQuerySchema,
        response=AuditLoginPageSchema,
        tag="audit",
    )
    def list_audit_logins(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """The login log of the caller's organisations (auditor or admin).

        Filters: ``user_id``, ``outcome``, ``reason``, ``ip``, ``since``,
        ``until`` (ISO 8601 with an offset), ``org_id``. Logged as
        ``audit.log_read``.
        """
        filters, page = split_query(query)
        return self.audit_rpc.list_logins(filters=filters, **page)

    @route(
        "GET",
        "/api/v1/audit/changes",
        query=AuditChangeQuerySchema,
        response=AuditChangePageSchema,
        tag="audit",
    )
    def list_audit_changes(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """The change log of the caller's organisations (auditor or admin).

        Each change lists its fields with ``before`` and ``after``, personal
        values decrypted while the subject's key exists (``"[erased]"``
        after). Filters: ``entity_type``, ``entity_id``, ``actor_user_id``,
        ``type``, ``since``, ``until``, ``org_id``. Logged as
        ``audit.log_read``.
        """
        filters, page = split_query(query)
        return self.audit_rpc.list_changes(filters=filters, **page)

    @route(
        "GET",
        "/api/v1/audit/export",
        query=AuditExportQuerySchema,
        tag="audit",
        content_type=EXPORT_TYPES["jsonl"],
    )
    def export_audit_log(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Response:
        """Stream the entries ``from_seq``..``to_seq`` (auditor or admin).

        ``format=jsonl`` (``application/x-ndjson``) is the verifiable export
        of ``docs/audit-log-format.md``: a header, every entry (those of
        organisations the caller may not see as redacted links), each
        checkpoint after the entry it signs, and a seal; check it with
        ``python -m services.audit.verify``. ``format=csv`` (``text/csv``)
        has one row per visible entry, personal values decrypted, for
        reading. The file is streamed page by page as the audit service
        answers; each page is logged as ``audit.log_exported``. If the audit
        service stops answering mid-way the stream ends early, without the
        seal, and the verifier refuses the file.
        """
        to_seq = query.get("to_seq")
        if to_seq is not None and to_seq < query["from_seq"]:
            raise ValidationFailed(
                "The request is not valid", {"to_seq": ["Must be at least from_seq."]}
            )
        fmt = query["format"]
        first = self.audit_rpc.export(
            from_seq=query["from_seq"], to_seq=to_seq, format=fmt, limit=EXPORT_PAGE
        )
        filename = f"audit-{first['from_seq']}-{first['to_seq']}.{fmt}"
        return Response(
            export_chunks(self.audit_rpc, first),
            mimetype=EXPORT_TYPES[fmt],
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    @route(
        "GET",
        "/api/v1/audit/checkpoints",
        query=AuditCheckpointQuerySchema,
        response=AuditCheckpointPageSchema,
        tag="audit",
    )
    def list_audit_checkpoints(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """The signed checkpoints, as export records (auditor or admin).

        Keep copies elsewhere: a later export whose entry at a checkpoint's
        seq has another hash proves that history was rewritten. Logged as
        ``audit.log_read``.
        """
        return self.audit_rpc.list_checkpoints(**query)

    @route(
        "GET", "/api/v1/audit/public-key", response=AuditPublicKeySchema, tag="audit"
    )
    def get_audit_public_key(self, request: Any, caller: Identity) -> Any:
        """The PEM Ed25519 public key that checkpoints and export seals verify
        with, and its key id (any signed-in user: the key is public)."""
        return self.audit_rpc.public_key()

    @route("POST", "/api/v1/audit/verify", response=AuditVerifySchema, tag="audit")
    def verify_audit_chain(self, request: Any, caller: Identity) -> Any:
        """Check the whole stored chain and its checkpoints (auditor or admin).

        Answers ``ok``, the head, and the first bad seq with the problems
        found. The check runs in one RPC, bounded by the gateway's RPC
        timeout: on a log of millions of entries it answers 504 and the
        export verifier is the way. Logged as ``audit.log_read``.
        """
        return self.audit_rpc.verify_chain()

    @route(
        "GET",
        "/api/v1/audit/dead-letters",
        query=AuditDeadLetterQuerySchema,
        response=AuditDeadLetterPageSchema,
        tag="audit",
    )
    def list_audit_dead_letters(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Messages the audit service could not store, newest first, with the
        total and the ingestion counters (trust admin only: they belong to no
        one organisation). Metadata only; the bodies stay in the queue
        ``audit.dead_letters``.
        """
        if not caller.orgs_for(DEAD_LETTER_ROLES):
            self.deny(
                caller,
                subject_type="audit_log",
                subject_id="list_dead_letters",
                action="list_dead_letters",
            )
            raise DeadLettersForbidden()
        return self.audit_rpc.list_dead_letters(**query)

    @route(
        "POST",
        "/api/v1/audit/subjects/<subject_id>/erase-key",
        body=AuditEraseKeySchema,
        response=AuditKeyErasedSchema,
        tag="audit",
    )
    def erase_audit_subject_key(
        self, request: Any, caller: Identity, subject_id: str, body: dict[str, Any]
    ) -> Any:
        """Destroy a data subject's key (school or trust admin of an
        organisation where the subject appears; 404 for any other).

        Their personal values in the log read ``"[erased]"`` from then on,
        and the chain still verifies. Logged as ``audit.subject_key_erased``.
        """
        if len(subject_id) > 128:
            raise ValidationFailed(
                "The request is not valid", {"subject_id": ["Longer than 128."]}
            )
        return self.audit_rpc.erase_subject_key(body["subject_type"], subject_id)
