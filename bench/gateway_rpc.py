"""The platform benchmark: ``python -m bench.gateway_rpc`` (``make bench``).

In one run on this machine it measures, and prints side by side:

1. a raw AMQP RPC round trip (kombu echo consumer, 10 calls in flight);
2. the authenticated gateway read endpoint ``GET /api/v1/me`` (token check in
   the gateway, an RPC to auth, a database lookup) under 10 keep-alive HTTP
   clients, its ratio to (1), and its p50/p99 latency at a fixed 100 req/s;
3. login throughput beside the bcrypt limit (cores / seconds per hash), and
   the read endpoint's p99 at a light fixed rate during logins beside idle.

The platform runs as the real separate processes (``nameko run`` of auth and
the gateway) on a fresh RabbitMQ vhost and a fresh PostgreSQL database, all
removed at the end, also on error or Ctrl-C. Results are also written as
JSON to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt

from bench import amqp_echo, cpu, profiling, seeding
from bench.http_load import KeepAliveClient, Request, closed_loop, open_loop
from bench.resources import (
    postgres_database,
    rabbit_vhost,
    raise_on_sigterm,
    run_tag,
)
from bench.stats import Latency, Throughput

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"

READ_RATIO_MUST = 0.20
READ_RATIO_GOAL = 0.35
LOGIN_FRACTION_MUST = 0.80
P99_GROWTH_MAX = 2.0


@dataclass(frozen=True)
class Settings:
    """How long and how hard each part runs; ``--quick`` shrinks them all."""

    amqp_calls: int = 5000
    amqp_max_seconds: float = 15.0
    read_clients: int = 10
    read_seconds: float = 10.0
    paced_rate: float = 100.0
    paced_seconds: float = 10.0
    light_rate: float = 20.0
    login_clients: int = 12
    login_seconds: float = 15.0
    bcrypt_cost: int = 12
    # Extra environment for the service processes (knobs such as MAX_WORKERS).
    platform_env: tuple[tuple[str, str], ...] = ()
    # Where py-spy profiles of the service processes go (None: no profiling).
    profile_dir: str | None = None

    @classmethod
    def quick(cls, **overrides: Any) -> Settings:
        return cls(
            **overrides,
            amqp_calls=1000,
            read_seconds=3.0,
            paced_seconds=3.0,
            login_clients=4,
            login_seconds=5.0,
        )


# -- measurements ------------------------------------------------------------


def measure_bcrypt(cost: int, repeats: int = 3) -> float:
    """Median seconds of one bcrypt hash at ``cost`` in this process.

    The input is 44 bytes, the length of the pre-hash auth feeds to bcrypt.
    """
    timings = []
    for _ in range(repeats):
        salt = bcrypt.gensalt(cost)
        started = time.perf_counter()
        bcrypt.hashpw(b"x" * 44, salt)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def login_request(username: str, password: str) -> Request:
    body = json.dumps({"username": username, "password": password}).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "cpd-bench"}
    return Request("POST", "/api/v1/auth/login", body, headers)


def log_in(port: int, username: str, password: str) -> str:
    """An access token for the user, through the gateway."""
    client = KeepAliveClient(HOST, port)
    try:
        status, body = client.send(login_request(username, password))
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"login as {username} answered {status}: {body[:300]!r}")
    return json.loads(body)["access_token"]


def me_request(token: str) -> Request:
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "cpd-bench"}
    return Request("GET", "/api/v1/me", None, headers)


def check_me(port: int, token: str) -> None:
    client = KeepAliveClient(HOST, port)
    try:
        status, body = client.send(me_request(token))
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"GET /api/v1/me answered {status}: {body[:300]!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# -- the platform ------------------------------------------------------------


def start_platform(
    stack: ExitStack, amqp_uri: str, tag: str, users: int, knobs: dict[str, str]
) -> tuple[int, list[seeding.Credentials], Any]:
    """Auth and the gateway as separate processes on a fresh database with
    ``users`` seeded users, stopped when ``stack`` closes; returns the gateway
    port, the users' credentials and the running processes."""
    from plumbing import migrations
    from scripts.processes import PROCESS_MODULES, Platform, platform_env

    # Every service the platform runs gets its own fresh database, as in
    # production (auth's is named bench_auth_<tag>).
    databases = {}
    for service in PROCESS_MODULES:
        if not (migrations.SERVICES_DIR / service / "migrations").is_dir():
            continue
        prefix = "bench_auth" if service == "auth" else f"bench_gw_{service}"
        url = stack.enter_context(postgres_database(prefix, tag))
        migrations.upgrade(service, url)
        databases[f"{service.upper()}_DATABASE_URL"] = url
    data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
    port = free_port()
    env = platform_env(
        {
            "AMQP_URI": amqp_uri,
            **databases,
            "JWT_SECRET": os.urandom(32).hex(),
            "GATEWAY_ADDRESS": f"{HOST}:{port}",
            "DATA_DIR": str(data_dir),
            **knobs,
        }
    )
    credentials = seeding.seed(env, users)
    processes = Platform(env=env, log_dir=data_dir / "logs")
    stack.callback(processes.stop)
    processes.start()
    try:
        processes.wait_ready(timeout=90)
    except Exception:
        print_logs(processes)
        raise
    return port, credentials, processes


def print_logs(processes: Any) -> None:
    for name in processes.processes:
        print(f"--- last lines of {name}'s log ---", file=sys.stderr)
        print(processes.tail(name), file=sys.stderr)


def run(settings: Settings) -> dict[str, Any]:
    """Every measurement, in order; the platform is stopped before returning."""
    tag = run_tag()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
            # Other work on the machine skews every figure; this says how much.
            "load_average_at_start": round(os.getloadavg()[0], 2),
        },
        "settings": asdict(settings),
    }
    with ExitStack() as stack:
        amqp_uri = stack.enter_context(rabbit_vhost(tag))

        say("raw AMQP echo RPC")
        raw = amqp_echo.measure(
            amqp_uri,
            calls=settings.amqp_calls,
            in_flight=10,
            max_seconds=settings.amqp_max_seconds,
        )
        results["amqp"] = raw.as_dict()

        say("starting the platform")
        users = settings.login_clients + 1
        port, credentials, processes = start_platform(
            stack, amqp_uri, tag, users, dict(settings.platform_env)
        )
        try:
            reader, login_users = credentials[0], credentials[1:]
            token = log_in(port, reader.username, reader.password)
            check_me(port, token)
            pids = {name: proc.pid for name, proc in processes.processes.items()}
            results.update(measure_platform(settings, port, token, login_users, pids))
        except Exception:
            print_logs(processes)
            raise
    return results


def measure_platform(
    settings: Settings,
    port: int,
    token: str,
    login_users: list[seeding.Credentials],
    pids: dict[str, int],
) -> dict[str, Any]:
    me = me_request(token)
    results: dict[str, Any] = {}
    profile_dir = Path(settings.profile_dir) if settings.profile_dir else None

    say("warming up GET /api/v1/me")
    closed_loop(HOST, port, lambda _: me, settings.read_clients, 2.0, 5000)

    say(f"GET /api/v1/me, {settings.read_clients} clients")
    counted = {**pids, "bench": os.getpid()}
    with (
        profiling.sampling(pids, "read", settings.read_seconds, profile_dir),
        cpu.accounting(counted) as used,
    ):
        read = closed_loop(
            HOST,
            port,
            lambda _: me,
            settings.read_clients,
            settings.read_seconds,
            max_requests=int(settings.read_seconds * 5000),
        )
    read.cpu = used
    results["read"] = read.as_dict()

    say(f"GET /api/v1/me at {settings.paced_rate:.0f} req/s")
    paced = open_loop(HOST, port, me, settings.paced_rate, settings.paced_seconds)
    results["read_paced"] = paced.as_dict()

    say(f"GET /api/v1/me at {settings.light_rate:.0f} req/s, idle")
    idle = open_loop(HOST, port, me, settings.light_rate, settings.login_seconds)
    results["read_light_idle"] = idle.as_dict()

    # Measured just before the logins so both see the same machine.
    say(f"bcrypt cost {settings.bcrypt_cost}")
    hash_seconds = measure_bcrypt(settings.bcrypt_cost)
    results["bcrypt"] = {
        "cost": settings.bcrypt_cost,
        "seconds_per_hash": round(hash_seconds, 4),
        "limit_per_second": round((os.cpu_count() or 1) / hash_seconds, 2),
    }

    say(f"logins, {settings.login_clients} clients, with /me beside them")
    with (
        profiling.sampling(pids, "logins", settings.login_seconds, profile_dir),
        cpu.accounting(counted) as used,
    ):
        logins, busy = logins_with_reads(settings, port, me, login_users)
    logins.cpu = used
    results["logins"] = logins.as_dict()
    results["read_light_during_logins"] = busy.as_dict()
    return results


def logins_with_reads(
    settings: Settings,
    port: int,
    me: Request,
    users: list[seeding.Credentials],
) -> tuple[Throughput, Latency]:
    """Closed-loop logins (one user per client) while ``/me`` runs at the
    light rate in another thread for the same time."""
    requests = [login_request(user.username, user.password) for user in users]
    light: dict[str, Latency] = {}

    def reads() -> None:
        light["result"] = open_loop(
            HOST, port, me, settings.light_rate, settings.login_seconds
        )

    reader = threading.Thread(target=reads, name="light-reads", daemon=True)
    reader.start()
    logins = closed_loop(
        HOST,
        port,
        lambda index: requests[index % len(requests)],
        settings.login_clients,
        settings.login_seconds,
        max_requests=int(settings.login_seconds * 100),
    )
    reader.join(timeout=settings.login_seconds + 60)
    if "result" not in light:
        raise RuntimeError("the light /me load did not finish")
    return logins, light["result"]


# -- verdicts and the table ----------------------------------------------------


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each threshold with its measured value and PASS/FAIL."""
    raw_rate = results["amqp"]["rate"]
    read_rate = results["read"]["rate"]
    ratio = read_rate / raw_rate if raw_rate else 0.0
    limit = results["bcrypt"]["limit_per_second"]
    login_fraction = results["logins"]["rate"] / limit if limit else 0.0
    idle_p99 = results["read_light_idle"]["p99_ms"]
    busy_p99 = results["read_light_during_logins"]["p99_ms"]
    growth = busy_p99 / idle_p99 if idle_p99 else float("inf")
    return {
        "read_ratio": {
            "value": round(ratio, 3),
            "must": READ_RATIO_MUST,
            "goal": READ_RATIO_GOAL,
            "pass": ratio >= READ_RATIO_MUST,
            "goal_met": ratio >= READ_RATIO_GOAL,
        },
        "login_fraction": {
            "value": round(login_fraction, 3),
            "must": LOGIN_FRACTION_MUST,
            "pass": login_fraction >= LOGIN_FRACTION_MUST,
        },
        "p99_growth_during_logins": {
            "value": round(growth, 2),
            "max": P99_GROWTH_MAX,
            "pass": growth <= P99_GROWTH_MAX,
        },
    }


def mark(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def table(results: dict[str, Any]) -> str:
    """The side-by-side table printed at the end of a run."""
    v = results["verdicts"]
    raw, read = results["amqp"], results["read"]
    paced = results["read_paced"]
    crypt, logins = results["bcrypt"], results["logins"]
    idle = results["read_light_idle"]
    busy = results["read_light_during_logins"]
    light = f"/me p99 at {idle['target_rate']:.0f} req/s"
    ratio = v["read_ratio"]
    goal = "goal met" if ratio["goal_met"] else f"goal {ratio['goal']} not met"
    rows = [
        ("Measurement", "Measured", "Beside", "Ratio", "Threshold", "Result"),
        ("Raw AMQP RPC, 10 in flight", f"{raw['rate']:,.0f} calls/s", "", "", "", ""),
        (
            "GET /api/v1/me, 10 clients",
            f"{read['rate']:,.0f} req/s",
            f"{raw['rate']:,.0f} calls/s",
            f"{ratio['value']:.3f}",
            f">= {ratio['must']:.2f} ({goal})",
            mark(ratio["pass"]),
        ),
        (
            f"/me at {paced['target_rate']:.0f} req/s (open loop)",
            f"p50 {paced['p50_ms']:.1f} ms",
            f"p99 {paced['p99_ms']:.1f} ms",
            "",
            "reported",
            "",
        ),
        (
            f"bcrypt cost {crypt['cost']}, one hash",
            f"{crypt['seconds_per_hash'] * 1000:.0f} ms",
            f"limit {crypt['limit_per_second']:.2f}/s",
            "",
            "",
            "",
        ),
        (
            f"Logins, {results['settings']['login_clients']} clients",
            f"{logins['rate']:.2f} logins/s",
            f"{crypt['limit_per_second']:.2f} /s limit",
            f"{v['login_fraction']['value']:.3f}",
            f">= {v['login_fraction']['must']:.2f}",
            mark(v["login_fraction"]["pass"]),
        ),
        (
            f"{light} during logins",
            f"{busy['p99_ms']:.1f} ms",
            f"idle {idle['p99_ms']:.1f} ms",
            f"{v['p99_growth_during_logins']['value']:.2f}x",
            f"<= {v['p99_growth_during_logins']['max']:.1f}x",
            mark(v["p99_growth_during_logins"]["pass"]),
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"Machine: {results['machine']['cores']} cores, Python "
        f"{results['machine']['python']}, {results['machine']['system']}; "
        f"{results['date']}; load average {results['machine']['load_average_at_start']}"
        f" at start, {results['machine']['load_average_at_end']} at end; CPU "
        f"{results['machine'].get('busy_before_start', 0):.0%} busy before start",
    ]
    knobs = results["settings"]["platform_env"]
    if knobs:
        lines.append("Service environment: " + " ".join(f"{k}={v}" for k, v in knobs))
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            )
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.append(errors_line(results))
    lines.extend(cpu_lines(results))
    return "\n".join(lines)


def cpu_lines(results: dict[str, Any]) -> list[str]:
    """CPU milliseconds per call or request, by process, for each loaded phase."""
    phases = [
        ("raw AMQP call", results["amqp"]),
        ("GET /api/v1/me", results["read"]),
        ("login (with /me beside)", results["logins"]),
    ]
    lines = ["CPU ms per operation (machine_busy: all cores; others: the rest):"]
    for label, phase in phases:
        per = phase.get("cpu_ms_per_operation") or {}
        if per:
            parts = ", ".join(f"{name} {value:.2f}" for name, value in per.items())
            lines.append(f"  {label}: {parts}")
    return lines


def errors_line(results: dict[str, Any]) -> str:
    parts = []
    for key in ("amqp", "read", "read_paced", "read_light_idle", "logins"):
        parts.append(f"{key} {results[key]['errors']}")
    parts.append(f"during logins {results['read_light_during_logins']['errors']}")
    return "Errors (non-2xx, failed or abandoned): " + ", ".join(parts)


def wait_for_quiet(limit: float, max_busy: float = 0.25) -> float:
    """Wait up to ``limit`` seconds for the machine's CPU to be mostly idle
    (other work skews every figure); return the busy fraction last seen."""
    deadline = time.monotonic() + limit
    while True:
        before = cpu.snapshot({})
        time.sleep(2.0)
        after = cpu.snapshot({})
        busy = (after["machine_busy"][0] - before["machine_busy"][0]) / max(
            after["machine_total"][0] - before["machine_total"][0], 1e-9
        )
        if busy <= max_busy or time.monotonic() >= deadline:
            return busy
        say(f"the machine is {busy:.0%} busy with other work; waiting for quiet")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "latest.json", help="JSON file"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the service processes, e.g. MAX_WORKERS=64",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="wait up to this long for other work on the machine to finish",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the services with py-spy during the read and login phases",
    )
    args = parser.parse_args(argv)
    knobs = tuple(tuple(item.split("=", 1)) for item in args.set)
    if any(len(knob) != 2 for knob in knobs):
        parser.error("--set takes KEY=VALUE")
    make = Settings.quick if args.quick else Settings
    profile_dir = str(RESULTS_DIR) if args.profile else None
    settings = make(platform_env=knobs, profile_dir=profile_dir)

    try:
        with raise_on_sigterm():
            busy = wait_for_quiet(args.wait_quiet)
            results = run(settings)
            results["machine"]["busy_before_start"] = round(busy, 2)
    except KeyboardInterrupt:
        print("interrupted; every process and resource of the run was removed")
        return 130
    results["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    results["verdicts"] = verdicts(results)

    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Results written to {args.output}")
    return 0 if all(item["pass"] for item in results["verdicts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
