"""The auth service's RPC entrypoints. The rules live in the domain modules
(accounts, sessions, users, organisations, importer); each method here checks
who may call it, hands over, and says what it emits."""

from __future__ import annotations

from typing import Any

from plumbing.database import Database
from plumbing.errors import PlatformError
from plumbing.identity import CallerIdentity, Identity, anonymous, authenticated
from plumbing.logging import LogContext
from plumbing.rpc import ServiceRpc, rpc
from services.auth import (
    accounts,
    importer,
    invitations,
    organisations,
    roles,
    sessions,
    users,
)
from services.auth.dependencies import Clock, JwtSecret, invitation_retry_timer

entrypoint = rpc(expected_exceptions=PlatformError)

# Reset codes and invitations go to notify after their transaction commits;
# a notify that does not answer within this is logged and reported as not
# sent rather than holding up a login page or an admin's request.
NOTIFY_TIMEOUT = 5.0


class AuthService:
    """Organisations, users, roles, passwords and sessions."""

    name = "auth"

    # No pre-ping: a round trip per request on the platform's hottest path
    # (see plumbing.database.Database for the trade-off).
    db = Database("auth", pre_ping=False)
    caller = CallerIdentity()
    log = LogContext("auth")
    # On auth's own account: notify takes reset codes and invitations from
    # the auth service only, whoever the request came from.
    notify_rpc = ServiceRpc("notify", timeout=NOTIFY_TIMEOUT, as_service="auth")
    now = Clock()
    jwt_secret = JwtSecret()

    @invitation_retry_timer(interval=60)
    def retry_invitations(self) -> None:
        """Every ``AUTH_INVITATION_RETRY_SECONDS``: invite again, with new
        codes, the users whose invitation notify could not take; emits
        ``auth.invitation_sent`` for each (see
        :mod:`services.auth.invitations`)."""
        sent = invitations.retry_undelivered(self.db, self.notify_rpc, now=self.now())
        if sent:
            self.log.info("invitations_resent", count=sent)

    @entrypoint
    @anonymous
    def ping(self) -> dict[str, Any]:
        """Anyone: readiness check. Emits nothing."""
        return {"service": self.name, "ok": True}

    @entrypoint
    @anonymous
    def login(
        self, username: str, password: str, ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        """Anyone: open a session with a username and password.

        Answers ``{access_token, refresh_token, token_type, expires_in, user}``.
        Emits ``auth.login_succeeded`` or ``auth.login_failed`` (with
        ``data.reason``), ``auth.account_locked`` at the tenth failure in a row,
        ``auth.login_throttled`` when the address is throttled.
        """
        answer = accounts.login(
            self.db,
            username=username,
            password=password,
            ip=ip,
            user_agent=user_agent,
            secret=self.jwt_secret,
            now=self.now(),
        )
        self.log.info("login_succeeded", user_id=answer["user"]["id"], ip=ip)
        return answer

    @entrypoint
    @anonymous
    def refresh(
        self, refresh_token: str, ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        """Anyone holding a refresh token: rotate it; same answer as login.

        Emits ``auth.token_refreshed``, or ``auth.sessions_revoked`` when a
        used token comes back (it was copied: the session ends).
        """
        return sessions.refresh(
            self.db,
            refresh_token=refresh_token,
            ip=ip,
            user_agent=user_agent,
            secret=self.jwt_secret,
            now=self.now(),
        )

    @entrypoint
    @anonymous
    def request_password_reset(
        self, login: str, ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        """Anyone: email a reset code (through ``notify.send_password_reset``)
        to the user with this username or email.

        Always answers ``{}``, even when notify is down (the code is then kept;
        the user may ask again). Emits ``auth.password_reset_requested`` when a
        code was made; the code itself is in no event and no log line.
        ResetThrottled (429) past the per-address limit; past the per-account
        limit no code is made and the answer is the same.
        """
        return accounts.request_password_reset(
            self.db,
            login=login,
            ip=ip,
            user_agent=user_agent,
            now=self.now(),
            notify=self.notify_rpc,
        )

    @entrypoint
    @anonymous
    def reset_password(
        self, code: str, new_password: str, ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        """Anyone holding a reset or invitation code: set a new password and
        end every session. Emits ``auth.password_reset_completed`` (with
        ``data.purpose``) and ``auth.sessions_revoked``."""
        return accounts.reset_password(
            self.db,
            code=code,
            new_password=new_password,
            ip=ip,
            user_agent=user_agent,
            now=self.now(),
        )

    @entrypoint
    @authenticated
    def list_revoked_sessions(self, caller: Identity, since: str) -> dict[str, Any]:
        """The gateway only (identity ``service == "gateway"``): the ids of
        sessions revoked since an ISO time, as ``{session_ids, until}``.
        Anyone else gets Forbidden and an ``authz.denied`` event."""
        return sessions.list_revoked(self.db, caller, since, now=self.now())

    @entrypoint
    @authenticated
    def logout(self, caller: Identity) -> dict[str, Any]:
        """Any signed-in user: end their own session. Emits
        ``auth.logged_out`` with ``data.session_id``."""
        return sessions.logout(self.db, caller, now=self.now())

    @entrypoint
    @authenticated
    def change_password(
        self, caller: Identity, current_password: str, new_password: str
    ) -> dict[str, Any]:
        """Any signed-in user: change their password given the current one;
        their other sessions end. Emits ``auth.password_changed`` and
        ``auth.sessions_revoked``."""
        return accounts.change_password(
            self.db,
            caller,
            current_password=current_password,
            new_password=new_password,
            now=self.now(),
        )

    @entrypoint
    @authenticated
    def get_current_user(self, caller: Identity) -> dict[str, Any]:
        """Any signed-in user: themself, with roles and scopes. Emits nothing."""
        # One statement (roles joined): no transaction needed around it.
        self.db.read_without_transaction()
        return users.get_current_user(self.db, caller)

    @entrypoint
    @authenticated
    def list_organisations(self, caller: Identity) -> dict[str, Any]:
        """Any signed-in user: ``{items}``, the organisations their roles
        cover and their own. Emits nothing."""
        return organisations.list_organisations(self.db, caller)

    @entrypoint
    @authenticated
    def get_organisation(self, caller: Identity, org_id: str) -> dict[str, Any]:
        """Any signed-in user, for an organisation their roles cover; else
        NotFound and an ``authz.denied`` event."""
        return organisations.get_organisation(self.db, caller, org_id)

    @entrypoint
    @authenticated
    def list_users(
        self,
        caller: Identity,
        org_id: str | None = None,
        query: str | None = None,
        active: bool | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> dict[str, Any]:
        """Any signed-in user: ``{items, total, offset, limit}`` of the users
        they may read (themself, their reports, their scope for admins, CPD
        leads and auditors); ``limit`` at most 100. Emits ``authz.denied``
        for an organisation out of reach."""
        params = {
            "org_id": org_id,
            "query": query,
            "active": active,
            "offset": offset,
            "limit": limit,
        }
        return users.list_users(self.db, caller, params)

    @entrypoint
    @authenticated
    def get_user(self, caller: Identity, user_id: str) -> dict[str, Any]:
        """The user themself, their line manager, or an admin, CPD lead or
        auditor covering the user's organisation; else NotFound and
        ``authz.denied``."""
        return users.get_user(self.db, caller, user_id)

    @entrypoint
    @authenticated
    def create_user(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """A school or trust admin covering ``data.org_id``: create a user and
        email them an invitation (with a code that sets the password when
        ``data.password`` is not given). Answers the user with
        ``invitation_sent`` (false if notify could not take it; the user is
        created all the same). Emits ``auth.user_created``,
        ``auth.role_granted`` per role and ``auth.invitation_sent``."""
        return users.create_user(
            self.db, caller, data, now=self.now(), notify=self.notify_rpc
        )

    @entrypoint
    @authenticated
    def update_user(
        self, caller: Identity, user_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A school or trust admin covering the user: change details or roles.
        Emits ``auth.user_updated`` (with ``changes``), ``auth.role_granted``
        and ``auth.role_revoked``."""
        return users.update_user(self.db, caller, user_id, data, now=self.now())

    @entrypoint
    @authenticated
    def deactivate_user(self, caller: Identity, user_id: str) -> dict[str, Any]:
        """A school or trust admin covering the user: deactivate them and end
        their sessions. Emits ``auth.user_deactivated`` and
        ``auth.sessions_revoked``."""
        return users.set_active(self.db, caller, user_id, False, now=self.now())

    @entrypoint
    @authenticated
    def reactivate_user(self, caller: Identity, user_id: str) -> dict[str, Any]:
        """A school or trust admin covering the user: let them sign in again.
        Emits ``auth.user_reactivated``."""
        return users.set_active(self.db, caller, user_id, True, now=self.now())

    @entrypoint
    @authenticated
    def import_users(
        self, caller: Identity, org_id: str, csv_text: str
    ) -> dict[str, Any]:
        """A school or trust admin covering ``org_id``: create users from CSV,
        all or none (IMPORT_INVALID lists every problem by row), and invite
        each with a code that sets their password, in one call to notify.
        Answers ``{imported, users, invitations_sent}``. Emits
        ``auth.user_created`` and ``auth.invitation_sent`` per user and
        ``auth.users_imported``."""
        return importer.import_users(
            self.db, caller, org_id, csv_text, now=self.now(), notify=self.notify_rpc
        )

    @entrypoint
    @authenticated
    def send_invitation(self, caller: Identity, user_id: str) -> dict[str, Any]:
        """A school or trust admin covering the user: email a user who has no
        password yet a new invitation code (their earlier invitation codes
        stop working). Answers ``{invitation_sent, expires_at}``;
        PASSWORD_ALREADY_SET (422) for a user with a password, CONFLICT for a
        deactivated one. Emits ``auth.invitation_sent``."""
        return users.send_invitation(
            self.db, caller, user_id, now=self.now(), notify=self.notify_rpc
        )

    @entrypoint
    @authenticated
    def list_roles(self, caller: Identity) -> dict[str, Any]:
        """Any signed-in user: ``{items}``, the roles with their descriptions."""
        return {"items": roles.catalogue()}

    @entrypoint
    @authenticated
    def revoke_sessions(self, caller: Identity, user_id: str) -> dict[str, Any]:
        """The user themself, or a school or trust admin covering them: end
        every session of the user; answers ``{revoked, session_ids}``. Emits
        ``auth.sessions_revoked``."""
        return users.revoke_user_sessions(self.db, caller, user_id, now=self.now())
