"""HTTP load on loopback: closed-loop throughput and open-loop latency.

Each client thread holds one keep-alive connection (``http.client``, which is
light enough that the load generator is not what limits the figures). Every
loop is bounded both in time and in request count.

Open-loop latency is measured from the time a request was *scheduled* to be
sent, not from when a free client sent it, so a stalled server shows up as
latency instead of silently lowering the request rate (coordinated omission).
"""

from __future__ import annotations

import http.client
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.stats import Latency, Throughput

REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class KeepAliveClient:
    """One persistent HTTP/1.1 connection, reopened after any failure."""

    def __init__(self, host: str, port: int, timeout: float = REQUEST_TIMEOUT) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._connection: http.client.HTTPConnection | None = None

    def send(self, request: Request) -> tuple[int, bytes]:
        """The status and body; ``(0, b"")`` when the request failed outright."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
        try:
            self._connection.request(
                request.method, request.path, request.body, request.headers
            )
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return 0, b""
        if response.will_close:
            self.close()
        return response.status, body

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def closed_loop(
    host: str,
    port: int,
    make_request: Callable[[int], Request],
    clients: int,
    duration: float,
    max_requests: int,
    ok_status: int = 200,
) -> Throughput:
    """``clients`` threads each send a request as soon as the last one answered,
    for ``duration`` seconds or ``max_requests`` requests in all."""
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    budget = {"left": max_requests}
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def take() -> bool:
        with lock:
            if budget["left"] <= 0:
                return False
            budget["left"] -= 1
            return True

    def run(index: int) -> None:
        client = KeepAliveClient(host, port)
        request = make_request(index)
        local: Counter[str] = Counter()
        start.wait()
        try:
            while time.perf_counter() < stop_at[0] and take():
                status, _ = client.send(request)
                local[str(status)] += 1
        finally:
            client.close()
            with lock:
                statuses.update(local)

    threads = [
        threading.Thread(target=run, args=(i,), name=f"load-{i}", daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + duration
    start.wait()
    for thread in threads:
        thread.join(timeout=duration + REQUEST_TIMEOUT + 5)
    elapsed = time.perf_counter() - began
    ok = statuses.get(str(ok_status), 0)
    return Throughput(
        operations=ok,
        errors=sum(statuses.values()) - ok,
        seconds=elapsed,
        statuses=dict(statuses),
    )


def open_loop(
    host: str,
    port: int,
    request: Request,
    rate: float,
    duration: float,
    workers: int = 16,
    ok_status: int = 200,
    stop: threading.Event | None = None,
    drain_seconds: float = 10.0,
) -> Latency:
    """Send ``request`` on a fixed schedule of ``rate`` per second for
    ``duration`` seconds; latency is taken from each scheduled send time.

    ``stop`` ends the schedule early (the figures then cover what ran).
    Requests still queued ``drain_seconds`` after the schedule ends are
    abandoned and counted as errors with status ``abandoned``.
    """
    scheduled_times: queue.Queue[float | None] = queue.Queue()
    samples: list[float] = []
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    total = int(rate * duration)
    give_up_at = [float("inf")]

    def work() -> None:
        client = KeepAliveClient(host, port)
        try:
            while (due := scheduled_times.get()) is not None:
                if time.perf_counter() > give_up_at[0]:
                    with lock:
                        statuses["abandoned"] += 1
                    continue
                status, _ = client.send(request)
                finished = time.perf_counter()
                with lock:
                    statuses[str(status)] += 1
                    if status == ok_status:
                        samples.append(finished - due)
        finally:
            client.close()

    threads = [
        threading.Thread(target=work, name=f"paced-{i}", daemon=True)
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter() + 0.01
    sent = 0
    for index in range(total):
        if stop is not None and stop.is_set():
            break
        due = began + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        scheduled_times.put(due)
        sent += 1
    give_up_at[0] = time.perf_counter() + drain_seconds
    for _ in threads:
        scheduled_times.put(None)
    for thread in threads:
        thread.join(timeout=drain_seconds + REQUEST_TIMEOUT + 5)
    elapsed = time.perf_counter() - began
    with lock:
        ok = len(samples)
        return Latency.from_samples(
            target_rate=rate,
            scheduled=sent,
            samples_s=list(samples),
            errors=sum(statuses.values()) - ok,
            seconds=elapsed,
            statuses=dict(statuses),
        )
