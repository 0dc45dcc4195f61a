"""Optional sampling profiles of the service processes during a bench phase.

With ``--profile``, py-spy (installed by hand, not a project dependency:
``.venv/bin/pip install py-spy``) samples each service process while a phase
runs and writes collapsed stacks (one ``frame;frame;... count`` per line) to
``bench/results/profile-<phase>-<process>.txt``; :func:`summarise` lists the
functions where most samples were taken.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


@contextmanager
def sampling(
    pids: dict[str, int], phase: str, seconds: float, out_dir: Path | None
) -> Iterator[list[Path]]:
    """Sample ``pids`` for ``seconds`` while the body runs; no-op without
    ``out_dir`` or py-spy. Yields the files that will hold the stacks."""
    binary = py_spy()
    if out_dir is None or binary is None:
        yield []
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    samplers: list[subprocess.Popen[bytes]] = []
    files: list[Path] = []
    for name, pid in pids.items():
        path = out_dir / f"profile-{phase}-{name}.txt"
        files.append(path)
        samplers.append(
            subprocess.Popen(
                [
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        yield files
    finally:
        for sampler in samplers:
            try:
                sampler.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait(timeout=5)


def summarise(path: Path, top: int = 15) -> list[tuple[str, float]]:
    """The functions present in the most samples (inclusive), as fractions."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for frame in set(stack.split(";")):
            inclusive[frame] += count
    if total == 0:
        return []
    return [(frame, count / total) for frame, count in inclusive.most_common(top)]
