"""`clever-elt run` on a disk that fills up: one clear error, nothing committed lost, and once
there is room again the next run ends where an untroubled sync ends.

The disk is a real tmpfs of a few megabytes, grown between runs as a user freeing space would;
mounting it needs root, so elsewhere the test is skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clever_elt.lake.layout import TMP_PREFIX, Lake
from helpers import event_ids, run_cli, sync_env, table_rows


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[str], None]]]:
    """(mount point of a 256 KiB tmpfs, a function that resizes it, e.g. to "3m")."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], check=True
    )

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount_point)], check=True)

    try:
        yield mount_point, resize
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def test_a_full_disk_fails_clearly_loses_nothing_and_the_run_after_catches_up(
    sim_server, tmp_path, small_disk
):
    reference = tmp_path / "reference"
    assert run_cli(sync_env(reference, sim_server), "run").returncode == 0
    mount_point, resize = small_disk
    data_dir = mount_point / "data"
    lake = Lake(data_dir / "lake")
    district = sim_server.simulator.district_id
    newest = sim_server.simulator.newest_event_id

    # 256 KiB: full while extracting; 3 and 8 MiB: the lake fits, the warehouse does not.
    for size in ("256k", "3m", "8m"):
        resize(size)
        result = run_cli(sync_env(data_dir, sim_server), "run")
        assert result.returncode == 1, (size, result.stderr[-2000:])
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (size, result.stderr[-2000:])
        assert f"the disk holding {data_dir} is full" in errors[0]
        assert "free some space and run again" in errors[0]
        assert not list(lake.root.rglob(f"{TMP_PREFIX}*")), size
        if size == "256k":
            assert lake.cursor(district) != newest
        else:
            assert lake.cursor(district) == newest

    resize("256m")
    result = run_cli(sync_env(data_dir, sim_server), "run")
    assert result.returncode == 0, result.stderr[-2000:]
    ours, theirs = data_dir / "warehouse.duckdb", reference / "warehouse.duckdb"
    assert table_rows(ours, "clever") == table_rows(theirs, "clever")
    ids = event_ids(ours)
    assert ids == event_ids(theirs)
    assert len(ids) == len(set(ids))
