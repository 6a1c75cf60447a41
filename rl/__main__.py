"""``python -m rl train CONFIG [--set a.b=c ...] [--resume latest|PATH]``, ``eval``, ``gyms``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from llm.errors import ConfigError
from llm.interrupt import Stop, stop_on_signals
from llm.progress import DEFAULT_EVERY_S, EVERY_ENV

if TYPE_CHECKING:
    from rl.config import TrainConfig

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown"
)
console = Console(stderr=True)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


def _config(path: Path, overrides: list[str] | None) -> TrainConfig:
    """The run's config, its named files and presets checked, before anything starts."""
    from rl.config import load_config

    try:
        return load_config(path, overrides or [], check_files=True)
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    """The message on stderr as it is (never wrapped, never read as markup), exit 2."""
    console.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _stopped(stop: Stop, kept: str) -> NoReturn:
    """One line saying which signal stopped the command and what is kept; exit 130/143."""
    console.print(f"stopped by {stop.name}: {kept}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(stop.exit_code)


PROGRESS_HELP = "Seconds between progress lines when output is not a terminal (CI, a log file)."


@app.command()
def train(
    config: Path = typer.Argument(..., help="GRPO run config (YAML)."),
    overrides: list[str] = typer.Option(None, "--set", help="Override a field: a.b=value."),
    resume: str = typer.Option(
        None,
        "--resume",
        help="'latest' (the newest complete checkpoint in output_dir) or a checkpoint path.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    progress_every: float = typer.Option(
        DEFAULT_EVERY_S, envvar=EVERY_ENV, min=0.01, help=PROGRESS_HELP
    ),
) -> None:
    """Train a policy with GRPO on the configured gym mixture.

    Ctrl-C or SIGTERM stops it within seconds (exit 130/143); the complete checkpoints
    are kept and ``--resume latest`` continues from the newest."""
    _logging(verbose)
    cfg = _config(config, overrides)
    from rl.gyms import GymError
    from rl.trainer import train as run

    with stop_on_signals() as stop:
        try:
            resuming = True if resume == "latest" else (resume or False)
            result = run(cfg, resume=resuming, progress_every_s=progress_every)
        except GymError as exc:  # a row of a gym's data file, read once training is set up
            _fail(str(exc))
        except KeyboardInterrupt:
            _stopped(stop, "complete checkpoints are kept; continue with --resume latest")
    console.print_json(json.dumps(result))


@app.command("eval")
def evaluate(
    config: Path = typer.Argument(..., help="The run's config (its gyms are evaluated)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint directory."),
    k: str = typer.Option("1,4", "--k", help="Comma-separated k values for pass@k."),
    samples: int = typer.Option(None, "--samples", help="Samples per task (default: max k)."),
    output: Path = typer.Option(None, "--json", help="Also write the results here as JSON."),
    overrides: list[str] = typer.Option(None, "--set", help="Override a field: a.b=value."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    progress_every: float = typer.Option(
        DEFAULT_EVERY_S, envvar=EVERY_ENV, min=0.01, help=PROGRESS_HELP
    ),
) -> None:
    """pass@k per gym on held-out tasks, as a table and JSON (last line of stdout).

    Ctrl-C or SIGTERM stops it within seconds (exit 130/143), writing nothing."""
    _logging(verbose)
    cfg = _config(config, overrides)
    if not checkpoint.is_dir():
        _fail(f"{checkpoint}: no such checkpoint directory")
    if output is not None and output.is_dir():
        _fail(f"{output}: is a directory, not a file")
    try:
        ks = sorted({int(x) for x in k.split(",") if x.strip()})
    except ValueError as exc:
        raise typer.BadParameter(f"--k must be integers like 1,4: {k!r}") from exc
    from rl.evaluate import evaluate as run
    from rl.gyms import GymError

    with stop_on_signals() as stop:
        try:
            results = run(cfg, checkpoint, ks, samples, progress_every_s=progress_every)
        except GymError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _stopped(stop, "nothing was written")
    table = Table(title=f"pass@k on held-out tasks: {checkpoint}")
    for column in ["gym", "tasks", "samples", *(f"pass@{x}" for x in ks), "mean score"]:
        table.add_column(column, justify="left" if column == "gym" else "right")
    for name, row in results.items():
        cells = [row.get(f"pass@{x}") for x in ks] + [row.get("mean_score")]
        table.add_row(name, str(row["tasks"]), str(row["samples"]), *(_fmt(c) for c in cells))
    console.print(table)
    text = json.dumps(results)
    if output:
        output.write_text(text)
    print(text)


@app.command()
def gyms() -> None:
    """List the registered gyms and their options."""
    from rl.gyms import GYMS

    table = Table(title="gyms")
    table.add_column("name")
    table.add_column("options")
    for name, cls in sorted(GYMS.items()):
        table.add_row(name, ", ".join(cls.Options.model_fields))
    Console().print(table)


def _fmt(value: object) -> str:
    return "-" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]


if __name__ == "__main__":
    app()
