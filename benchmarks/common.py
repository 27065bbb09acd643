"""What every benchmark step shares: the simulator as a `clever-elt demo-server` child process
(clock and truth through its `/_sim/` endpoints) and one way to run a contender as a child process
while measuring its wall time and peak resident memory. Knows nothing of any contender's internals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import psutil
import requests

log = logging.getLogger(__name__)

# Share of a timeline's events that a first sync downloads at the simulator's default clock: the
# timeline's first days are already past retention and its last days are still to come. Measured
# for seeds 1-3 at scales 5e4..2e5 (0.676-0.681); the run reports the exact count it synced.
RETAINED_SHARE = 0.678
STARTUP_TIMEOUT_S = 600.0
SAMPLE_INTERVAL_S = 0.05
DEFAULT_MEMORY_CAP = 6 * 1024**3


def scale_for(events: int) -> int:
    """The `--scale` whose first sync has about `events` events to download."""
    return max(100, round(events / RETAINED_SHARE))


class SimulatorProcess:
    """A `clever-elt demo-server` child on a free loopback port; use as a context manager."""

    def __init__(self, seed: int, scale: int, token: str, log_path: Path):
        self.seed = seed
        self.scale = scale
        self.token = token
        self.log_path = log_path
        self.base_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()

    def __enter__(self) -> SimulatorProcess:
        argv = [
            *clever_elt_command(),
            "demo-server",
            "--host=127.0.0.1",
            "--port=0",
            f"--seed={self.seed}",
            f"--scale={self.scale}",
            f"--token={self.token}",
        ]
        with self.log_path.open("wb") as stderr:
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr)
        self.base_url = self._read_base_url()
        return self

    def _read_base_url(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline().decode().strip()
            if line.startswith("CLEVER_API_BASE_URL="):
                return line.split("=", 1)[1]
            if not line and self._proc.poll() is not None:
                break
        self.close()
        raise RuntimeError(f"the simulator did not start; see {self.log_path}")

    @property
    def admin_url(self) -> str:
        return self.base_url.rsplit("/v3.1", 1)[0] + "/_sim"

    def _admin(self, method: str, path: str) -> dict[str, Any]:
        response = self._http.request(method, f"{self.admin_url}/{path}", timeout=600)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        return self._admin("GET", "state")

    def advance(self, events: int) -> dict[str, Any]:
        return self._admin("POST", f"advance?events={events}")

    def set_now(self, when: str) -> dict[str, Any]:
        return self._admin("POST", f"now?now={quote(when)}")

    def write_truth(self, record_type: str, path: Path) -> Path:
        """Writes the live records of `record_type` at the current clock as one JSON array."""
        response = self._http.get(f"{self.admin_url}/truth/{record_type}", timeout=600)
        response.raise_for_status()
        body = response.content  # {"data":[...]}
        path.write_bytes(body[body.index(b"[") : body.rindex(b"]") + 1])
        return path

    def close(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def clever_elt_command() -> list[str]:
    """`clever-elt` as this interpreter runs it (works without the venv's bin/ on PATH)."""
    return [sys.executable, "-m", "clever_elt.cli"]


@dataclass
class Measurement:
    """One child process: wall time, exit code, peak RSS (the larger of the highest high-water mark
    of any one process of its tree and the summed RSS of the tree, both read every
    `SAMPLE_INTERVAL_S`) and that sampled peak of the summed RSS alone."""

    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    peak_tree_rss_bytes: int
    log_file: Path
    killed_at_memory_cap: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; results are committed, so the log is named without its folder."""
        data = asdict(self)
        data["log_path"] = data.pop("log_file").name
        return data

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_file.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _high_water_mark(proc: psutil.Process) -> int:
    """The peak resident memory of a process since it started its program (Linux's VmHWM), or
    its current RSS where /proc does not tell."""
    try:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return proc.memory_info().rss


def own_peak_rss_bytes() -> int:
    """This process's peak resident memory since it started its program: for a benchmark child
    to report itself (its `ru_maxrss` would start at its parent's RSS when it forked)."""
    return _high_water_mark(psutil.Process())


class _TreeSampler(threading.Thread):
    """Polls a process and its descendants: keeps the maximum of their summed RSS and the largest
    high-water mark of any one of them, and kills the tree once the sum passes `cap_bytes` (the
    machine is shared: better a failed step than the kernel's OOM killer picking some other
    process)."""

    def __init__(self, pid: int, cap_bytes: int):
        super().__init__(daemon=True, name=f"rss-{pid}")
        self.peak = 0
        self.peak_process = 0
        self.capped = False
        self._cap = cap_bytes
        self._root = psutil.Process(pid)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_INTERVAL_S):
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                    self.peak_process = max(self.peak_process, _high_water_mark(proc))
                except psutil.NoSuchProcess:
                    continue
            self.peak = max(self.peak, total)
            if total > self._cap and not self.capped:
                self.capped = True
                log.error("RSS %d MiB passed the cap: killing pid %d", total >> 20, self._root.pid)
                for proc in reversed(procs):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        proc.kill()

    def stop(self) -> None:
        self._done.set()
        self.join()


def measure(
    argv: list[str],
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
    memory_cap_bytes: int = DEFAULT_MEMORY_CAP,
) -> Measurement:
    """Run `argv` to completion with its output in `log_path`; returns a `Measurement`."""
    log.info("running %s", " ".join(argv))
    with log_path.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        sampler = _TreeSampler(proc.pid, memory_cap_bytes)
        sampler.start()
        # Not the child's ru_maxrss from wait4: on Linux it starts at this process's own RSS
        # when it forked, so a large benchmark process would be counted as the child's peak.
        proc.wait()
        wall = time.perf_counter() - started
        sampler.stop()
    return Measurement(
        # Results are committed: no path of this machine in them.
        argv=["python" if arg == sys.executable else arg for arg in argv],
        returncode=proc.returncode,
        wall_s=wall,
        peak_rss_bytes=max(sampler.peak_process, sampler.peak),
        peak_tree_rss_bytes=sampler.peak,
        log_file=Path(log_path),
        killed_at_memory_cap=memory_cap_bytes if sampler.capped else None,
    )


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a contender: ours, without any Clever settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEVER_")}
    env.update(extra)
    return env
