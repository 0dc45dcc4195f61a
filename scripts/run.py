"""The local runner behind ``make run``.

Checks that RabbitMQ answers, migrates every service's database, seeds a demo
trust (once), prints the demo credentials and the URL, then starts every
service and the gateway as separate processes until Ctrl-C.

Unless ``NOTIFY_SMTP_HOST`` names an SMTP server, it also runs the mail
catcher (``scripts.mail_sink``) on ``NOTIFY_SMTP_PORT`` (8025), which keeps
every email the platform sends as a file under ``DATA_DIR/mail``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from plumbing import config
from scripts import migrate, seed
from scripts.processes import Platform, platform_env, rabbitmq_reachable


def main() -> int:
    amqp_uri = config.amqp_uri()
    if not rabbitmq_reachable(amqp_uri):
        print(
            f"RabbitMQ is not reachable at {amqp_uri.split('@')[-1]}: start it with "
            "`rabbitmq-server -detached` (or `docker run -d -p 5672:5672 rabbitmq:3`),"
            " or point AMQP_URI at one."
        )
        return 1

    migrate.main()
    credentials = seed.seed_demo()
    address = config.gateway_address()
    env = platform_env({"GATEWAY_ADDRESS": address, "JWT_SECRET": config.jwt_secret()})
    platform = Platform(env=env, log_dir=config.data_dir() / "logs")

    stopping = False

    def _stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    mail_folder = None
    if not os.environ.get("NOTIFY_SMTP_HOST"):
        mail_folder = (config.data_dir() / "mail").resolve()
        port = int(os.environ.get("NOTIFY_SMTP_PORT", "8025"))
        platform.start_mail_sink(mail_folder, port)
    platform.start()
    try:
        platform.wait_ready()
        seed.print_credentials(credentials)
        print(f"\nThe platform is running: {platform.base_url}/api/v1/docs")
        if mail_folder is not None:
            print(f"Emails are caught, not sent: {mail_folder}/*.eml")
        print(f"Logs: {Path(platform.log_dir).resolve()}/<service>.log. Ctrl-C stops.")
        while not stopping:
            for name, proc in platform.processes.items():
                if proc.poll() is not None:
                    print(f"{name} stopped with code {proc.returncode}:")
                    print(platform.tail(name))
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:
        print(error)
        return 1
    finally:
        platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
