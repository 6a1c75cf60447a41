"""``python -m synth``: run a synthesis job (locally or under ``ray job submit``), re-render
a run's report."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from llm import ConfigError
from llm.interrupt import stop_on_signals
from llm.progress import DEFAULT_EVERY_S, EVERY_ENV
from synth.schema import Manifest

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown"
)
console = Console()
err = Console(stderr=True)


@app.command()
def run(
    config: Path = typer.Argument(..., help="Job config (YAML), e.g. configs/synth/demo.yaml."),
    overrides: list[str] = typer.Option([], "--set", help="Override a field: a.b=value."),
    output_dir: Path | None = typer.Option(None, help="Where to write (overrides output_dir)."),
    progress_every: float = typer.Option(
        DEFAULT_EVERY_S,
        envvar=EVERY_ENV,
        min=0.01,
        help="Seconds between progress lines when output is not a terminal (CI, a log file).",
    ),
) -> None:
    """Run (or resume) a job: tools → agents → tasks → trajectories → judge → dataset.

    Ctrl-C or SIGTERM stops it within seconds, keeping what is finished: run the same
    command again to resume. Exit status: 0 done (the manifest reconciles), 1 failed,
    2 bad input, 130/143 stopped by SIGINT/SIGTERM."""
    from synth import TaskError
    from synth.config import load_config
    from synth.pipeline import JobFailed
    from synth.pipeline import run as run_job

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if output_dir is not None:
        overrides = [*overrides, f"output_dir={output_dir}"]
    with stop_on_signals() as stop:
        try:
            job = load_config(config, overrides, check_files=True)
            manifest = run_job(job, console=err, progress_every_s=progress_every)
        except (ConfigError, TaskError) as exc:
            _fail(str(exc))
        except JobFailed as exc:
            _fail(str(exc), code=1)
        except KeyboardInterrupt:  # Ray hands a signal back as a plain KeyboardInterrupt
            err.print(
                f"stopped by {stop.name}: finished records are kept; run the same command "
                "again to resume",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(stop.exit_code) from None
    summary(manifest, job.output_dir)


def summary(manifest: Manifest, out: Path) -> None:
    counts = manifest.counts.model_dump()
    table = Table(title=f"synthesis: {manifest.name}")
    table.add_column("stage")
    table.add_column("count", justify="right")
    for key in ("tools", "agents", "tasks", "trajectories", "accepted", "rejected"):
        table.add_row(key, str(counts[key]))
    for reason, n in manifest.rejected_by_reason.items():
        table.add_row(f"  rejected: {reason}", str(n))
    rate = counts["accepted"] / counts["trajectories"] if counts["trajectories"] else 0.0
    table.add_row("acceptance rate", f"{rate:.0%}")
    console.print(table)
    console.print(f"dataset: {out / 'data'}  (accepted: {out / 'data' / 'accepted'})")
    console.print(f"report:  {out / 'report.html'}")
    console.print(f"manifest: {out / 'manifest.json'}  reconciled={manifest.reconciled}")


@app.command()
def report(output_dir: Path = typer.Argument(..., help="A run's output directory.")) -> None:
    """Re-render report.html from a run's shards and manifest."""
    from pydantic import ValidationError

    from llm.yamlconf import YamlConfigError, first_problem, read_text
    from synth.report import write_report
    from synth.store import RunStore

    path = output_dir / "manifest.json"
    if not output_dir.is_dir():
        _fail(f"{output_dir}: not a run directory (no such directory)")
    if not path.exists():
        _fail(f"{output_dir} has no manifest.json (has the run finished?)")
    try:
        manifest = json.loads(read_text(path))
    except YamlConfigError as exc:
        _fail(str(exc))
    except json.JSONDecodeError as exc:
        _fail(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}")
    try:
        parsed = Manifest.model_validate(manifest)
    except ValidationError as exc:
        _fail(f"{path}: not a run manifest: {first_problem(exc, '(manifest)')}")
    console.print(f"report: {write_report(RunStore(output_dir), parsed)}")


def _fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr (never wrapped, never read as markup), exit ``code`` (2: bad input)."""
    err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
