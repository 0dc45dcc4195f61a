"""Start the platform as separate processes: one per service, and the gateway.

Used by the local runner (``make run``), the end-to-end tests and the
benchmarks, so that all three start the platform the same way, with the same
commands that docker-compose runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
from kombu import Connection

ROOT = Path(__file__).resolve().parent.parent

# nameko service (module:class) of each process, in start order; the gateway
# comes last. The class is named because a module may import other classes
# with entrypoints (the gateway's route mixins).
PROCESS_MODULES = {
    "auth": "services.auth.service:AuthService",
    "audit": "services.audit.service:AuditService",
    "training": "services.training.service:TrainingService",
    "reviews": "services.reviews.service:ReviewsService",
    "notify": "services.notify.service:NotifyService",
    "gateway": "gateway.service:GatewayService",
}


def nameko_command(module: str) -> list[str]:
    """The command that runs one service, here and in docker-compose."""
    nameko = Path(sys.executable).with_name("nameko")
    return [str(nameko), "run", "--config", str(ROOT / "config.yml"), module]


def mail_sink_command(folder: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The development mail catcher (``scripts.mail_sink``), as docker-compose
    runs it too: an SMTP server keeping each message as a file in ``folder``."""
    return [
        sys.executable,
        "-m",
        "scripts.mail_sink",
        "--host",
        host,
        "--port",
        str(port),
        "--dir",
        str(folder),
    ]


def rabbitmq_reachable(amqp_uri: str, timeout: float = 3.0) -> bool:
    try:
        with Connection(amqp_uri, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 (any failure means "not reachable")
        return False


@dataclass
class Platform:
    """A running set of service processes."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.env['GATEWAY_ADDRESS']}"

    def start(self, names: list[str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names or list(PROCESS_MODULES):
            with open(self.log_dir / f"{name}.log", "ab") as log:
                # The child keeps its own copy of the file descriptor.
                self.processes[name] = subprocess.Popen(
                    nameko_command(PROCESS_MODULES[name]),
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def start_mail_sink(self, folder: Path, port: int) -> None:
        """Run the mail catcher beside the services, for a platform with no
        SMTP server of its own; notify must be pointed at ``port``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "mailsink.log", "ab") as log:
            self.processes["mailsink"] = subprocess.Popen(
                mail_sink_command(folder, port),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the gateway's /ready answers 200, or raise."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}: {self.tail(name)}"
                    )
            try:
                response = requests.get(f"{self.base_url}/ready", timeout=2)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as error:
                last = repr(error)
            time.sleep(0.3)
        raise RuntimeError(f"platform not ready after {timeout}s: {last}")

    def stop(self, names: list[str] | None = None, sig: int = signal.SIGTERM) -> None:
        for name in names or list(self.processes):
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, sig)
        for name in names or list(self.processes):
            proc = self.processes.get(name)
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def logs(self) -> str:
        return "\n".join(
            (self.log_dir / f"{name}.log").read_text(errors="replace")
            for name in self.processes
            if (self.log_dir / f"{name}.log").exists()
        )


def platform_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(overrides)
    return env
