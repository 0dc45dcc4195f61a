"""A local SMTP server that keeps every message it receives as a file:
``make run``'s mail catcher and the tests' real SMTP peer.

    python -m scripts.mail_sink --port 8025 --dir data/mail

Each accepted message is written to ``<dir>/<n>-<recipient>.eml`` (written to
a temporary name first, then renamed, so a reader never sees half a file).
With ``--tls-cert``/``--tls-key`` it offers STARTTLS (or, with
``--implicit-tls``, speaks TLS from the first byte, as on port 465) and, with
``--auth user:password``, requires a login over TLS. While the file named by
``--refuse-file`` exists, every message is answered ``451`` (try again
later), as a mail server that is struggling does.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import ssl
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder: Path, refuse_file: Path | None) -> None:
        self.folder = folder
        self.refuse_file = refuse_file
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_file is not None and self.refuse_file.exists():
            return "451 4.3.0 Try again later"
        with self.lock:
            number = next(self.counter)
        recipient = "".join(
            c if c.isalnum() or c in "@.-_" else "_" for c in envelope.rcpt_tos[0]
        )
        target = self.folder / f"{number:06d}-{recipient}.eml"
        temporary = target.with_suffix(".part")
        temporary.write_bytes(envelope.original_content or envelope.content)
        os.replace(temporary, target)
        return "250 OK"


def authenticator(user: str, password: str) -> Any:
    def check(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (
            data.login.decode() == user and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.mail_sink",
        description="A local SMTP server that keeps every message it receives "
        "as a .eml file: make run's mail catcher and the tests' SMTP peer.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="default: 8025")
    parser.add_argument(
        "--dir", type=Path, default=Path("data/mail"), help="default: data/mail"
    )
    parser.add_argument(
        "--refuse-file",
        type=Path,
        help="while this file exists, answer every message 451 (try later)",
    )
    parser.add_argument("--tls-cert", type=Path, help="offer STARTTLS with this")
    parser.add_argument("--tls-key", type=Path, help="the key of --tls-cert")
    parser.add_argument(
        "--implicit-tls",
        action="store_true",
        help="with --tls-cert: TLS from the first byte (as on port 465), not STARTTLS",
    )
    parser.add_argument("--auth", help="user:password to require over TLS")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.implicit_tls:
            options.update(ssl_context=context)
        else:
            options.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")
        options.update(authenticator=authenticator(user, password), auth_required=True)
        if args.implicit_tls:
            # aiosmtpd counts only STARTTLS as TLS when it guards AUTH; here
            # the whole connection is TLS already.
            options.update(auth_require_tls=False)
    controller = Controller(
        Sink(args.dir, args.refuse_file), hostname=args.host, port=args.port, **options
    )
    controller.start()
    print(f"mail sink on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
