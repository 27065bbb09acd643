"""`clever-elt run`: one incremental sync through the Dagster assets the UI uses, run in-process.

Shows progress while Dagster executes the steps, then a summary; exit 0, or 1 with one clear line.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clever_elt.defs.build import build_definitions
from clever_elt.defs.schedules import SYNC_JOB
from clever_elt.settings import Settings, SettingsError

console = Console(stderr=True)

# How Python, pyarrow and DuckDB all word ENOSPC (from the C library).
_DISK_FULL = os.strerror(errno.ENOSPC).lower()
# What Dagster's run failure says when SIGINT or SIGTERM stopped it.
_INTERRUPTED = "DagsterExecutionInterruptedError"
EXIT_INTERRUPTED = 130  # the shell's convention for a program stopped by SIGINT


class _ProgressHandler(logging.Handler):
    """Feeds Dagster's log stream to a progress bar: one tick per finished step.

    Without a terminal (cron, CI, a log file) the bar draws nothing, so each message of the
    pipeline's own is written as a plain timestamped line instead.
    """

    def __init__(self, progress: Progress, task: int):
        super().__init__(logging.INFO)
        self.progress = progress
        self.task = task

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            if meta.get("step_key"):
                message = meta.get("orig_message", "")
                self.progress.update(self.task, description=message[:70])
                if not self.progress.console.is_terminal:
                    stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
                    self.progress.console.print(f"{stamp} {message}", highlight=False)
            return
        if event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            self.progress.advance(self.task)
        elif event.event_type_value == "STEP_START":
            self.progress.update(self.task, description=f"{event.step_key} ...")


def _progress_logger(progress: Progress, task: int) -> dg.LoggerDefinition:
    @dg.logger(description="Progress bar for `clever-elt run`.")
    def progress_logger(_init_context: dg.InitLoggerContext) -> logging.Logger:
        log = logging.getLogger("clever_elt.run.progress")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.handlers = [_ProgressHandler(progress, task)]
        return log

    return progress_logger


@dataclass
class Summary:
    new_events: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    checks_passed: int = 0
    failed_checks: list[tuple[str, str, str]] = field(default_factory=list)
    failure: str | None = None
    interrupted: bool = False  # SIGINT (Ctrl-C) or SIGTERM stopped the run

    @property
    def blocking_checks(self) -> list[str]:
        """The failed checks of ERROR severity: those that fail the run (a WARN one does not)."""
        return [check for check, severity, _ in self.failed_checks if severity == "ERROR"]


def summarize(result: dg.ExecuteInProcessResult) -> Summary:
    summary = Summary()
    for event in result.all_events:
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            metadata = materialization.metadata
            name = materialization.asset_key.to_user_string().replace("/", ".")
            if "events_written" in metadata:
                summary.new_events = metadata["events_written"].value
            if "dagster/row_count" in metadata:
                summary.rows[name] = metadata["dagster/row_count"].value
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if evaluation.passed:
                summary.checks_passed += 1
            else:
                description = evaluation.metadata.get("description")
                count = evaluation.metadata.get("count")
                found = f"{count.value:,} found" if count else "failed"
                summary.failed_checks.append(
                    (
                        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}",
                        evaluation.severity.value,
                        f"{found}; expected: {description.value}" if description else found,
                    )
                )
        elif kind == "STEP_FAILURE" and summary.failure is None:
            summary.failure = _root_cause(event.event_specific_data.error)
        elif kind in ("RUN_FAILURE", "PIPELINE_FAILURE"):
            errors = _chain(event.event_specific_data.error)
            summary.interrupted = any(getattr(e, "cls_name", None) == _INTERRUPTED for e in errors)
    return summary


def _chain(error: object) -> list[object]:
    """A Dagster (serialized) error and the errors it was raised from, outermost first."""
    chain = []
    while error is not None:
        chain.append(error)
        error = getattr(error, "cause", None)
    return chain


def _root_cause(error: object) -> str:
    """What made a step fail, from its chain of exceptions: the innermost one clever-elt raised
    (its message is written for the user; what it wraps is library detail that the message
    already sums up), else the innermost of all."""
    messages = [str(getattr(e, "message", e)).strip() for e in _chain(error)]
    ours = [m for m in messages if m.startswith("clever_elt.")]
    if ours:
        return ours[-1].split(": ", 1)[-1]  # without the class name
    return messages[-1]


def _explained(failure: str, settings: Settings) -> str:
    """The failure, with what to do about it when the cause is a full disk."""
    if _DISK_FULL in failure.lower():
        return (
            f"the disk holding {settings.data_dir} is full ({failure}). Everything committed "
            "before is kept: free some space and run again."
        )
    return failure


def _error(message: str) -> None:
    """The one `error:` line: never wrapped (logs are grepped), its text never read as markup."""
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)


def _render(summary: Summary) -> None:
    table = Table(title="clever-elt run", show_lines=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in sorted(summary.rows.items()):
        table.add_row(name, f"{rows:,}")
    console.print(table)
    errors = len(summary.blocking_checks)
    warnings = len(summary.failed_checks) - errors
    console.print(
        f"new events: {summary.new_events:,}   checks passed: {summary.checks_passed}   "
        f"warnings: {warnings}   errors: {errors}"
    )
    for check, severity, description in summary.failed_checks:
        console.print(
            f"  [{'red' if severity == 'ERROR' else 'yellow'}]{severity}[/] {check}: {description}"
        )


def main(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        settings.create_data_dir()
    except SettingsError as exc:
        _error(str(exc))
        return 2
    with Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting ...", total=None)
        defs = build_definitions(settings, loggers={"console": _progress_logger(progress, task)})
        job = defs.resolve_job_def(SYNC_JOB.name)
        progress.update(task, total=len(job.graph.node_defs))
        result = job.execute_in_process(
            # Naming the logger replaces Dagster's default DEBUG console output.
            run_config={"loggers": {"console": {}}},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    summary = summarize(result)
    _render(summary)
    if summary.interrupted:
        _error(
            "interrupted before the sync finished. Everything committed before is kept: run "
            "again to go on."
        )
        return EXIT_INTERRUPTED
    if summary.failure:
        _error(_explained(summary.failure, settings))
        return 1
    if not result.success:
        _error(f"checks failed: {', '.join(summary.blocking_checks) or 'see above'}")
        return 1
    return 0
