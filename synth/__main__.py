"""``python -m synth``: run a synthesis job (locally or under ``ray job submit``), re-render
a run's report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from llm import ConfigError

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
) -> None:
    """Run (or resume) a job: tools → agents → tasks → trajectories → judge → dataset."""
    from synth.config import load_config
    from synth.pipeline import run as run_job
    from synth.tools import TaskError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if output_dir is not None:
        overrides = [*overrides, f"output_dir={output_dir}"]
    try:
        job = load_config(config, overrides)
        manifest = run_job(job, console=err)
    except (ConfigError, TaskError) as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(2) from exc
    summary(manifest, job.output_dir)


def summary(manifest: dict[str, Any], out: Path) -> None:
    counts = manifest["counts"]
    table = Table(title=f"synthesis: {manifest['name']}")
    table.add_column("stage")
    table.add_column("count", justify="right")
    for key in ("tools", "agents", "tasks", "trajectories", "accepted", "rejected"):
        table.add_row(key, str(counts[key]))
    for reason, n in manifest["rejected_by_reason"].items():
        table.add_row(f"  rejected: {reason}", str(n))
    rate = counts["accepted"] / counts["trajectories"] if counts["trajectories"] else 0.0
    table.add_row("acceptance rate", f"{rate:.0%}")
    console.print(table)
    console.print(f"dataset: {out / 'data'}  (accepted: {out / 'data' / 'accepted'})")
    console.print(f"report:  {out / 'report.html'}")
    console.print(f"manifest: {out / 'manifest.json'}  reconciled={manifest['reconciled']}")


@app.command()
def report(output_dir: Path = typer.Argument(..., help="A run's output directory.")) -> None:
    """Re-render report.html from a run's shards and manifest."""
    from synth.report import write_report
    from synth.store import RunStore

    store = RunStore(output_dir)
    manifest = store.load_json("manifest.json")
    if manifest is None:
        err.print(f"error: {output_dir} has no manifest.json (has the run finished?)")
        raise typer.Exit(2)
    console.print(f"report: {write_report(store, manifest)}")


if __name__ == "__main__":
    app()
