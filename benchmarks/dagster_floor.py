"""The floor of any `clever-elt run`: a Dagster run of the same shape that does no work.

DESIGN.md has `clever-elt run` go through the Dagster assets the UI uses: one asset per table, its
checks, one step per record type. This script copies that shape from the project's own
definitions (the same steps, asset keys, deps and checks) into stand-in assets that only report
what clever-elt's report (a row count and a preview per table, a count per check), and runs their
job in process as `clever-elt run` does, each run in a fresh Python process that imports nothing
of clever-elt's, timed from start to exit; beside it, a run of a single empty asset. It then says
what the targets of issue #6 leave for an incremental sync: 10% of a full sync at 50,000 events/s.

    .venv/bin/python -m benchmarks.dagster_floor            # 5 runs of each
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

log = logging.getLogger("dagster_floor")

ROOT = Path(__file__).resolve().parents[1]
FULL_SYNC_EVENTS = 994_873  # the events of benchmarks.compare's default full sync
TARGET_EVENTS_PER_S = 50_000
TARGET_INCREMENTAL_SHARE = 0.10


def _step_shapes() -> list[dict]:
    """Each step of the project's job: its name, its assets (key, deps) and its checks."""
    from clever_elt.defs.build import build_definitions
    from clever_elt.settings import Settings

    graph = build_definitions(Settings()).resolve_asset_graph()
    return [
        {
            "name": assets.node_def.name,
            "assets": [
                {"key": spec.key.path, "deps": [dep.asset_key.path for dep in spec.deps]}
                for spec in assets.specs
            ],
            "checks": [
                {"name": spec.name, "asset": spec.asset_key.path, "blocking": spec.blocking}
                for spec in assets.check_specs
            ],
        }
        for assets in graph.assets_defs
    ]


def _stand_in(step: dict) -> dg.AssetsDefinition:
    """An asset step with the name, assets, deps and checks of `step`, doing no work."""
    specs = [
        dg.AssetSpec(asset["key"], deps=asset["deps"], skippable=True) for asset in step["assets"]
    ]
    checks = [
        dg.AssetCheckSpec(check["name"], asset=check["asset"], blocking=check["blocking"])
        for check in step["checks"]
    ]
    keys = [spec.key for spec in specs]

    @dg.multi_asset(name=step["name"], specs=specs, check_specs=checks, can_subset=True)
    def _step():
        for key in keys:
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={"dagster/row_count": 0, "preview": dg.MetadataValue.md("| id |\n|---|")},
            )
        for check in checks:
            yield dg.AssetCheckResult(
                asset_key=check.asset_key, check_name=check.name, passed=True, metadata={"count": 0}
            )

    return _step


def _shaped_definitions(shapes: list[dict]) -> dg.Definitions:
    job = dg.define_asset_job("stand_in")
    steps = [_stand_in(step) for step in shapes]
    return dg.Definitions(assets=steps, jobs=[job], executor=dg.in_process_executor)


def _one_asset_definitions() -> dg.Definitions:
    @dg.asset
    def nothing() -> None:
        return None

    job = dg.define_asset_job("stand_in")
    return dg.Definitions(assets=[nothing], jobs=[job], executor=dg.in_process_executor)


def _child(which: str, shapes_file: str) -> int:
    if which == "shaped":
        defs = _shaped_definitions(json.loads(Path(shapes_file).read_text()))
    else:
        defs = _one_asset_definitions()
    result = defs.resolve_job_def("stand_in").execute_in_process(
        # As `clever-elt run`: no DEBUG console output.
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    return 0 if result.success else 1


def _timed_run(which: str, shapes_file: Path) -> float:
    command = [sys.executable, "-m", "benchmarks.dagster_floor", "--child", which, str(shapes_file)]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(*args.child)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    shapes = _step_shapes()
    shape = {
        "steps": len(shapes),
        "assets": sum(len(step["assets"]) for step in shapes),
        "checks": sum(len(step["checks"]) for step in shapes),
    }
    times: dict[str, list[float]] = {"shaped": [], "one": []}
    with tempfile.TemporaryDirectory() as work:
        shapes_file = Path(work) / "shapes.json"
        shapes_file.write_text(json.dumps(shapes))
        for _ in range(args.runs):  # alternated: the machine is shared
            for which in times:
                times[which].append(_timed_run(which, shapes_file))
    budget = FULL_SYNC_EVENTS / TARGET_EVENTS_PER_S * TARGET_INCREMENTAL_SHARE
    report = {
        "shape": shape,
        "shaped_run_s": [round(t, 2) for t in times["shaped"]],
        "one_asset_run_s": [round(t, 2) for t in times["one"]],
        "incremental_budget_at_targets_s": round(budget, 2),
    }
    sys.stdout.write(json.dumps(report) + "\n")
    log.info(
        "an empty Dagster run shaped like clever-elt's (%d steps, %d assets, %d checks): "
        "min %.2f s, median %.2f s; of one empty asset: min %.2f s",
        shape["steps"],
        shape["assets"],
        shape["checks"],
        min(times["shaped"]),
        statistics.median(times["shaped"]),
        min(times["one"]),
    )
    log.info(
        "a full sync of %d events at %d events/s takes at most %.1f s; an incremental sync under "
        "%d%% of it must take under %.2f s",
        FULL_SYNC_EVENTS,
        TARGET_EVENTS_PER_S,
        FULL_SYNC_EVENTS / TARGET_EVENTS_PER_S,
        TARGET_INCREMENTAL_SHARE * 100,
        budget,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
