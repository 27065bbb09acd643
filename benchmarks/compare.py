"""`python -m benchmarks.compare`: one run, one simulated district, three ways to sync it: the floor
(bare download of every events page), clever-elt (`clever-elt run`, full then incremental) and the
dlt equivalent (full then incremental). Each step is a child process measured for wall time and
peak memory, and its current-state tables are checked against the simulator's truth; the run
prints a table with the ratios and writes JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb

from benchmarks import verify
from benchmarks.common import (
    DEFAULT_MEMORY_CAP,
    Measurement,
    SimulatorProcess,
    child_env,
    clever_elt_command,
    measure,
    scale_for,
)
from clever_elt.spec import record_types

log = logging.getLogger("benchmarks.compare")

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
DEFAULT_EVENTS = 1_000_000
QUICK_EVENTS = 50_000
DEFAULT_DLT_EVENTS = 50_000
QUICK_DLT_EVENTS = 10_000
INCREMENTAL_EVENTS = 10_000
TOKEN = "BENCH_TOKEN"
# Before the timeline's first event: advancing from here by N events shows the district's first N.
BEFORE_TIMELINE = "2000-01-01T00:00:00Z"
GIB = 1024**3

TARGETS = {
    "clever_elt_vs_dlt_events_per_s": 50.0,
    "clever_elt_full_events_per_s": 50_000.0,
    "incremental_share_of_full_wall": 0.10,
    "clever_elt_peak_rss_bytes": float(GIB),
}


@dataclass
class Step:
    """One measured sync: who, which phase, how many events, what it cost, whether it is right."""

    contender: str
    phase: str
    events: int = 0
    measurement: Measurement | None = None
    checks: list[verify.TableCheck] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ran(self) -> bool:
        return self.error is None and self.measurement is not None

    @property
    def events_per_s(self) -> float | None:
        if not self.ran or not self.measurement.wall_s:
            return None
        return self.events / self.measurement.wall_s

    @property
    def peak_rss(self) -> int | None:
        if self.measurement is None:
            return None
        return max(self.measurement.peak_rss_bytes, self.measurement.peak_tree_rss_bytes)

    @property
    def agrees(self) -> bool | None:
        """None when there is nothing to compare (the floor keeps no tables)."""
        if self.checks is None:
            return None if self.ran else False
        return self.ran and all(check.agrees for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "phase": self.phase,
            "events": self.events,
            "wall_s": self.measurement.wall_s if self.measurement else None,
            "events_per_s": self.events_per_s,
            "peak_rss_bytes": self.peak_rss,
            "agrees_with_truth": self.agrees,
            "error": self.error,
            "measurement": self.measurement.as_dict() if self.measurement else None,
            "checks": [c.as_dict() for c in self.checks] if self.checks is not None else None,
            "detail": self.detail,
        }


class Bench:
    """The run's shared context: the simulator, the work directory, child environments."""

    def __init__(self, sim: SimulatorProcess, work: Path, memory_cap_bytes: int):
        self.sim = sim
        self.work = work
        self.memory_cap_bytes = memory_cap_bytes

    def env(self, **extra: str) -> dict[str, str]:
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        return child_env(
            CLEVER_API_BASE_URL=self.sim.base_url,
            CLEVER_API_TOKEN=self.sim.token,
            PYTHONPATH=pythonpath,
            **extra,
        )

    def run(self, step: Step, argv: list[str], **env: str) -> Measurement:
        name = f"{step.contender}-{step.phase}"
        m = measure(
            argv, self.env(**env), self.work / f"{name}.log", self.work, self.memory_cap_bytes
        )
        step.measurement = m
        if m.killed_at_memory_cap:
            step.error = f"killed: its resident memory passed the {m.killed_at_memory_cap:,} B cap"
        elif m.returncode < 0:
            step.error = f"killed by signal {-m.returncode} (out of memory?): {m.log_tail(15)}"
        elif m.returncode != 0:
            step.error = f"exit code {m.returncode}: {m.log_tail(15)}"
        return m

    def check(self, step: Step, db_path: Path, contender_sql: verify.ContenderSql) -> None:
        """Compares the step's tables with the truth at the simulator's current clock."""
        if not step.ran:
            return
        truth_dir = self.work / f"truth-{step.contender}-{step.phase}"
        truth_dir.mkdir()
        files = {rt: self.sim.write_truth(rt, truth_dir / f"{rt}.json") for rt in record_types()}
        step.checks = verify.check_database(db_path, files, contender_sql)
        shutil.rmtree(truth_dir)
        for check in step.checks:
            if not check.agrees:
                log.warning("%s %s: %s", step.contender, step.phase, check.as_dict())


def run_floor(bench: Bench) -> Step:
    step = Step("floor", "full")
    out = bench.work / "floor.json"
    bench.run(step, [sys.executable, "-m", "benchmarks.floor", str(out)])
    if step.ran:
        step.detail = json.loads(out.read_text())
        step.events = step.detail["events"]
    return step


def run_clever_elt(bench: Bench, phase: str) -> Step:
    """One `clever-elt run` on the benchmark's data directory (empty before the full sync)."""
    step = Step("clever-elt", phase)
    data_dir = bench.work / "clever-elt"
    warehouse = data_dir / "warehouse.duckdb"
    before = _count_events(warehouse)
    bench.run(step, [*clever_elt_command(), "run"], CLEVER_ELT_DATA_DIR=str(data_dir))
    if step.ran:
        step.events = _count_events(warehouse) - before
    bench.check(step, warehouse, verify.clever_elt_sql)
    return step


def _count_events(warehouse: Path) -> int:
    if not warehouse.exists():
        return 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT count(*) FROM raw.events").fetchone()[0]


def run_dlt(bench: Bench, phase: str) -> Step:
    step = Step("dlt", phase)
    work = bench.work / "dlt"
    out = bench.work / f"dlt-{phase}.json"
    argv = [sys.executable, "-m", "benchmarks.dlt_pipeline", str(work), str(out)]
    # No telemetry (there is no network) and no dlt state outside the work directory.
    bench.run(step, argv, RUNTIME__DLTHUB_TELEMETRY="false", DLT_DATA_DIR=str(work / "home"))
    if step.ran:
        step.detail = json.loads(out.read_text())
        step.events = step.detail["events"]
    bench.check(step, work / "dlt.duckdb", verify.dlt_sql)
    return step


def full_and_incremental(bench: Bench, run_step, incremental_events: int) -> list[Step]:
    full = run_step(bench, "full")
    if not full.ran:
        return [full]
    bench.sim.advance(incremental_events)
    return [full, run_step(bench, "incremental")]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(steps: list[Step]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ratios the issue asks for, and each target with its measured value."""
    by = {(s.contender, s.phase): s for s in steps}
    floor = by.get(("floor", "full"))
    ce_full = by.get(("clever-elt", "full"))
    ce_inc = by.get(("clever-elt", "incremental"))
    dlt_full = by.get(("dlt", "full"))

    def rate(step: Step | None) -> float | None:
        return step.events_per_s if step is not None else None

    def wall(step: Step | None) -> float | None:
        return step.measurement.wall_s if step is not None and step.ran else None

    ce_steps = [s for s in (ce_full, ce_inc) if s is not None and s.peak_rss is not None]
    ratios = {
        "clever_elt_vs_dlt_events_per_s": ratio(rate(ce_full), rate(dlt_full)),
        "clever_elt_vs_floor_events_per_s": ratio(rate(ce_full), rate(floor)),
        "dlt_vs_floor_events_per_s": ratio(rate(dlt_full), rate(floor)),
        "incremental_share_of_full_wall": ratio(wall(ce_inc), wall(ce_full)),
    }
    values = {
        "clever_elt_vs_dlt_events_per_s": ratios["clever_elt_vs_dlt_events_per_s"],
        "clever_elt_full_events_per_s": rate(ce_full),
        "incremental_share_of_full_wall": ratios["incremental_share_of_full_wall"],
        "clever_elt_peak_rss_bytes": max((s.peak_rss for s in ce_steps), default=None),
    }
    valid = all(s.agrees for s in (ce_full, ce_inc) if s is not None)
    targets = {}
    for name, target in TARGETS.items():
        value = values[name]
        lower_is_better = name in ("incremental_share_of_full_wall", "clever_elt_peak_rss_bytes")
        met = None if value is None else (value < target if lower_is_better else value >= target)
        targets[name] = {
            "target": target,
            "value": value,
            "met": bool(met and valid) if met is not None else None,
            "rule": "<" if lower_is_better else ">=",
        }
    return ratios, targets


def render(result: dict[str, Any]) -> str:
    """The table printed at the end of a run (also the shape used in benchmarks/README.md)."""
    lines = [
        f"{'step':<24} {'events':>10} {'wall s':>9} {'events/s':>10} {'peak RSS':>10}  truth",
        "-" * 76,
    ]
    for s in result["steps"]:
        agrees = {True: "agrees", False: "DISAGREES", None: "-"}[s["agrees_with_truth"]]
        if s["error"]:
            agrees = "FAILED"
        rss = f"{s['peak_rss_bytes'] / 2**20:,.0f} MiB" if s["peak_rss_bytes"] else "-"
        wall = f"{s['wall_s']:,.1f}" if s["wall_s"] is not None else "-"
        rate = f"{s['events_per_s']:,.0f}" if s["events_per_s"] else "-"
        name = f"{s['contender']} {s['phase']}"
        lines.append(f"{name:<24} {s['events']:>10,} {wall:>9} {rate:>10} {rss:>10}  {agrees}")
    lines.append("")
    for name, value in result["ratios"].items():
        lines.append(f"{name:<36} {'-' if value is None else f'{value:,.3f}'}")
    lines.append("")
    for name, t in result["targets"].items():
        value = t["value"]
        shown = "-" if value is None else f"{value:,.3f}"
        met = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"target {name} {t['rule']} {t['target']:,.2f}: {shown} ({met})")
    lines.extend(result["notes"])
    return "\n".join(lines) + "\n"


def _git_state() -> dict[str, Any]:
    """The commit the run started from, and whether the code it ran had uncommitted changes."""

    def git(*argv: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *argv], cwd=REPO, capture_output=True, text=True, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return None
        return out.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results")
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(status)}


def _versions() -> dict[str, str | None]:
    found = {}
    for name in ("clever-elt", "dlt", "duckdb", "dagster", "pyarrow"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    git = _git_state()
    scale = scale_for(args.events)
    notes: list[str] = []
    with SimulatorProcess(args.seed, scale, TOKEN, work / "simulator.log") as sim:
        bench = Bench(sim, work, int(args.memory_cap_gib * GIB))
        state0 = sim.state()
        log.info("simulator ready: %s", state0)
        steps = [run_floor(bench)]
        size = steps[0].events or args.events
        steps += full_and_incremental(bench, run_clever_elt, args.incremental_events)
        if args.dlt_events:
            dlt_events = min(args.dlt_events, size)
            if dlt_events < size:
                # The district's first events, at the clock right after the last of them.
                sim.set_now(BEFORE_TIMELINE)
                sim.advance(dlt_events)
                notes.append(
                    f"note: dlt ran on a smaller slice: the same district's first {dlt_events:,} "
                    f"events (clock moved back), not on the {size:,} events of the other steps; "
                    "its events/s are for that size."
                )
            else:
                sim.set_now(state0["now"])
            steps += full_and_incremental(bench, run_dlt, args.incremental_events)
        else:
            notes.append("note: dlt was not run (--dlt-events 0).")
        final_state = sim.state()
    result: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.compare", *args.argv]),
        "started_at": started.isoformat(),
        "duration_s": (datetime.now(UTC) - started).total_seconds(),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
        },
        "versions": _versions(),
        "git": git,
        "config": {
            "events": args.events,
            "dlt_events": args.dlt_events,
            "incremental_events": args.incremental_events,
            "seed": args.seed,
            "scale": scale,
            "memory_cap_bytes": int(args.memory_cap_gib * GIB),
        },
        "simulator": {"initial_state": state0, "final_state": final_state},
        "steps": [s.as_dict() for s in steps],
    }
    result["ratios"], result["targets"] = summarize(steps)
    if any(s.agrees is False for s in steps):
        notes.append("note: a step disagrees with the truth or failed: its speed does not count.")
    result["notes"] = notes
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help=f"events the full sync downloads (default {DEFAULT_EVENTS:,}; --quick: "
        f"{QUICK_EVENTS:,})",
    )
    parser.add_argument("--quick", action="store_true", help="smoke-test size (under ~2 minutes)")
    parser.add_argument(
        "--dlt-events",
        type=int,
        default=None,
        help="run dlt on the district's first N events only, because it is slow (default "
        f"{DEFAULT_DLT_EVENTS:,}; --quick: {QUICK_DLT_EVENTS:,}; 0 = skip dlt)",
    )
    parser.add_argument("--incremental-events", type=int, default=INCREMENTAL_EVENTS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--memory-cap-gib",
        type=float,
        default=DEFAULT_MEMORY_CAP / GIB,
        help="kill a step whose process tree holds more resident memory than this (the step "
        "then counts as failed)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="kept afterwards (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    args.argv = argv
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else DEFAULT_EVENTS
    if args.dlt_events is None:
        args.dlt_events = QUICK_DLT_EVENTS if args.quick else DEFAULT_DLT_EVENTS
    return args


def main(argv: list[str] | None = None) -> int:
    """0: every step ran and agrees with the truth; 1: results written, but a step failed or
    disagrees; 2: the benchmark itself could not run."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="clever-elt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = benchmark(args, work)
    except Exception:
        log.exception("the benchmark could not run (work directory: %s)", work)
        return 2
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    label = "quick" if args.quick else "full"
    path = args.results_dir / f"{label}-{args.events}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(render(result))
    sys.stdout.write(f"results: {path}\n")
    ok = all(s["error"] is None and s["agrees_with_truth"] is not False for s in result["steps"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
