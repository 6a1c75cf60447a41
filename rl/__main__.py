"""``python -m rl train CONFIG [--set a.b=c ...] [--resume latest|PATH]``, ``eval``, ``gyms``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from llm.errors import ConfigError
from llm.files import atomic_write
from llm.interrupt import Stop, stop_on_signals
from llm.progress import DEFAULT_EVERY_S, EVERY_ENV

if TYPE_CHECKING:
    from rl.config import TrainConfig

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown"
)
console = Console(stderr=True)
T = TypeVar("T")
C = TypeVar("C")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    if not verbose:  # a line per model request (the openai SDK's HTTP clients) drowns the rest
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _config(path: Path, overrides: list[str] | None) -> TrainConfig:
    """The run's config, its named files and presets checked, before anything starts."""
    from rl.config import load_config

    return _load(load_config, path, overrides)


def _load(loader: Callable[..., C], path: Path, overrides: list[str] | None) -> C:
    """A config loaded with its named files checked; a bad one is one line and exit 2."""
    try:
        return loader(path, overrides or [], check_files=True)
    except ConfigError as exc:
        _fail(str(exc))


def _until_stopped(
    work: Callable[[], T], kept: str, errors: tuple[type[Exception], ...] = (ConfigError,)
) -> T:
    """``work()``; one of ``errors`` (bad input found once work began) is one line and
    exit 2, Ctrl-C or SIGTERM one line saying what is ``kept`` and exit 130/143."""
    with stop_on_signals() as stop:
        try:
            return work()
        except errors as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _stopped(stop, kept)


def _fail(message: str) -> NoReturn:
    """The message on stderr as it is (never wrapped, never read as markup), exit 2."""
    console.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _stopped(stop: Stop, kept: str) -> NoReturn:
    """One line saying which signal stopped the command and what is kept; exit 130/143."""
    console.print(f"stopped by {stop.name}: {kept}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(stop.exit_code)


PROGRESS_HELP = "Seconds between progress lines when output is not a terminal (CI, a log file)."
OVERRIDES = typer.Option(None, "--set", help="Override a field: a.b=value.")
RESUME = typer.Option(
    None,
    "--resume",
    help="'latest' (the newest complete checkpoint in output_dir) or a checkpoint path.",
)
VERBOSE = typer.Option(False, "--verbose", "-v")
PROGRESS_EVERY = typer.Option(DEFAULT_EVERY_S, envvar=EVERY_ENV, min=0.01, help=PROGRESS_HELP)
KEPT_CHECKPOINTS = "complete checkpoints are kept; continue with --resume latest"


def _resuming(resume: str | None) -> bool | str:
    """``--resume`` as the trainers take it: True for 'latest', a path, or False."""
    return True if resume == "latest" else (resume or False)


@app.command()
def train(
    config: Path = typer.Argument(..., help="GRPO run config (YAML)."),
    overrides: list[str] = OVERRIDES,
    resume: str = RESUME,
    verbose: bool = VERBOSE,
    progress_every: float = PROGRESS_EVERY,
) -> None:
    """Train a policy with GRPO on the configured gym mixture.

    Ctrl-C or SIGTERM stops it within seconds (exit 130/143); the complete checkpoints
    are kept and ``--resume latest`` continues from the newest."""
    _logging(verbose)
    cfg = _config(config, overrides)
    from rl.gyms import GymError
    from rl.trainer import train as run

    result = _until_stopped(  # GymError: a row of a gym's data file, read once set up
        lambda: run(cfg, resume=_resuming(resume), progress_every_s=progress_every),
        KEPT_CHECKPOINTS,
        errors=(GymError,),
    )
    console.print_json(json.dumps(result))


@app.command()
def sft(
    config: Path = typer.Argument(..., help="SFT run config (YAML)."),
    overrides: list[str] = OVERRIDES,
    resume: str = RESUME,
    verbose: bool = VERBOSE,
    progress_every: float = PROGRESS_EVERY,
) -> None:
    """Fine-tune on conversations (synthesis runs, JSONL or parquet of messages), loss on
    the assistant's tokens only; the model lands in ``output_dir/final``, ready to serve.
    The summary is printed as JSON (last line of stdout).

    Ctrl-C or SIGTERM stops it within seconds (exit 130/143); the complete checkpoints
    are kept and ``--resume latest`` continues from the newest."""
    _logging(verbose)
    from rl.sft_config import load_sft_config

    cfg = _load(load_sft_config, config, overrides)
    from rl.sft import train as run

    result = _until_stopped(  # ConfigError: the data, the model or the checkpoint to resume
        lambda: run(cfg, resume=_resuming(resume), progress_every_s=progress_every),
        KEPT_CHECKPOINTS,
    )
    print(json.dumps(result))


@app.command("eval")
def evaluate(
    config: Path = typer.Argument(..., help="The run's config (its gyms are evaluated)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint directory."),
    k: str = typer.Option("1,4", "--k", help="Comma-separated k values for pass@k."),
    samples: int = typer.Option(None, "--samples", help="Samples per task (default: max k)."),
    output: Path = typer.Option(None, "--json", help="Also write the results here as JSON."),
    png: Path = typer.Option(
        None,
        "--png",
        help="The agentic pass^k plot (default: beside --json, else in the trials directory).",
    ),
    only: str = typer.Option(
        "all", "--only", help="'gyms', 'agentic' (the agentic_eval block) or 'all'."
    ),
    overrides: list[str] = OVERRIDES,
    verbose: bool = VERBOSE,
    progress_every: float = PROGRESS_EVERY,
) -> None:
    """pass@k per gym on held-out tasks and, with an ``agentic_eval`` block, pass@k and
    pass^k on held-out agentic tasks played with the simulated user: tables, a PNG of
    pass^k against k, and JSON (last line of stdout; the agentic report under ``agentic``).

    Ctrl-C or SIGTERM stops it within seconds (exit 130/143); only finished agentic
    trials are kept (the same command resumes them)."""
    _logging(verbose)
    cfg = _config(config, overrides)
    if not checkpoint.is_dir():
        _fail(f"{checkpoint}: no such checkpoint directory")
    for path in (output, png):
        if path is not None and path.is_dir():
            _fail(f"{path}: is a directory, not a file")
    if only not in ("all", "gyms", "agentic"):
        _fail(f"--only must be gyms, agentic or all, not {only!r}")
    if only == "agentic" and cfg.agentic_eval is None:
        _fail(f"{config}: --only agentic needs an agentic_eval block")
    trials = _agentic_trials(cfg, checkpoint) if only != "gyms" else None
    try:
        ks = sorted({int(x) for x in k.split(",") if x.strip()})
    except ValueError as exc:
        raise typer.BadParameter(f"--k must be integers like 1,4: {k!r}") from exc
    results: dict[str, Any] = {}
    if only != "agentic":
        results = _gyms(cfg, checkpoint, ks, samples, progress_every)
    if trials is not None:
        results["agentic"] = _agentic(
            cfg, checkpoint, trials, png or _beside(output), progress_every
        )
    text = json.dumps(results)
    if output:
        atomic_write(output, text.encode())
    print(text)


def _gyms(
    cfg: TrainConfig, checkpoint: Path, ks: list[int], samples: int | None, every: float
) -> dict[str, Any]:
    """pass@k per gym, printed as a table; the results."""
    from rl.evaluate import evaluate as run
    from rl.gyms import GymError

    results = _until_stopped(
        lambda: run(cfg, checkpoint, ks, samples, progress_every_s=every),
        "nothing was written",
        errors=(GymError,),
    )
    table = Table(title=f"pass@k on held-out tasks: {checkpoint}")
    for column in ["gym", "tasks", "samples", *(f"pass@{x}" for x in ks), "mean score"]:
        table.add_column(column, justify="left" if column == "gym" else "right")
    for name, row in results.items():
        cells = [row.get(f"pass@{x}") for x in ks] + [row.get("mean_score")]
        table.add_row(name, str(row["tasks"]), str(row["samples"]), *(_fmt(c) for c in cells))
    console.print(table)
    return results


def _agentic_trials(cfg: TrainConfig, checkpoint: Path) -> Path | None:
    """The agentic trials' directory, once the checkpoint, the tasks and the directory
    are checked (a bad one fails here, before the gyms run); None without the block."""
    if cfg.agentic_eval is None:
        return None
    from llm.embedded.model import check_checkpoint
    from rl.agentic_eval import trials_dir
    from rl.task_sources import load_task_set
    from rl.trials import open_store

    directory = trials_dir(cfg.agentic_eval, cfg.output_dir, checkpoint)
    try:
        load_task_set(cfg.agentic_eval.tasks)
        check_checkpoint(checkpoint)
        open_store(directory, cfg.agentic_eval)
    except ConfigError as exc:
        _fail(str(exc))
    return directory


def _agentic(
    cfg: TrainConfig, checkpoint: Path, trials: Path, png: Path | None, progress_every: float
) -> dict[str, object]:
    """Play the agentic tasks, print their table, plot pass^k; the report."""
    from rl.agentic_eval import evaluate_agentic, plot
    from rl.agentic_eval import table as agentic_table

    assert cfg.agentic_eval is not None  # _agentic_trials said so
    agentic_eval = cfg.agentic_eval
    report = _until_stopped(
        lambda: evaluate_agentic(agentic_eval, checkpoint, trials, progress_every_s=progress_every),
        f"finished agentic trials are kept in {trials}; the same command resumes",
    )
    console.print(agentic_table(report))
    report["png"] = str(plot(report, png or trials / "pass_hat_k.png"))
    console.print(f"pass^k plot: {report['png']}", markup=False, highlight=False)
    return report


def _beside(output: Path | None) -> Path | None:
    return output.with_suffix(".png") if output is not None else None


@app.command()
def sample(
    config: Path = typer.Argument(..., help="Rejection-sampling config (YAML)."),
    overrides: list[str] = OVERRIDES,
    verbose: bool = VERBOSE,
    progress_every: float = PROGRESS_EVERY,
) -> None:
    """Rejection sampling: the policy plays each verifiable task k times and the trials
    that pass become an SFT dataset (``output_dir/data/accepted``) with its manifest;
    a table per environment kind and difficulty, and the counts as JSON (last line).

    A rerun resumes, playing only the missing (task, sample) trials. Ctrl-C or SIGTERM
    stops it within seconds (exit 130/143), keeping every finished trial."""
    _logging(verbose)
    from rl.sample_config import load_sample_config

    cfg = _load(load_sample_config, config, overrides)
    from rl.rejection import sample as run

    manifest = _until_stopped(
        lambda: run(cfg, progress_every_s=progress_every),
        "finished trials are kept; the same command resumes",
    )
    table = Table(title=f"rejection sampling: {cfg.output_dir} ({cfg.samples} per task)")
    for column in ("group", "tasks", "trials", "passed", "pass rate"):
        table.add_column(column, justify="left" if column == "group" else "right")
    groups = [
        ("environment", manifest["by_environment"]),
        ("difficulty", manifest["by_difficulty"]),
    ]
    for kind, rows in groups:
        for name, row in rows.items():
            cells = (str(row["tasks"]), str(row["played"]), str(row["passed"]))
            table.add_row(f"{kind} {name}", *cells, _fmt(row["pass_rate"]))
    console.print(table)
    keys = ("tasks", "trials", "pass_rate", "reasons", "errors_last_run")
    print(json.dumps({"output_dir": str(cfg.output_dir), **{k: manifest[k] for k in keys}}))


@app.command()
def recipe(
    config: Path = typer.Argument(..., help="Recipe config (YAML): one config per stage."),
    overrides: list[str] = OVERRIDES,
    fresh: bool = typer.Option(False, "--fresh", help="Remove the run directory first."),
    verbose: bool = VERBOSE,
) -> None:
    """K2's recipe in one run: synthesis → SFT → rejection-sampling rounds → GRPO, with
    the agentic evaluation after every stage; a final table and plot of every metric.

    Each stage is its own command (its resolved config, log and marker under
    ``run_dir/stages/``); a rerun skips finished stages and resumes the first unfinished
    one. Ctrl-C or SIGTERM stops the running stage, which keeps what it finished."""
    _logging(verbose)
    from rl.recipe import Recipe, StageFailed, remove_run
    from rl.recipe_config import load_recipe

    cfg = _load(load_recipe, config, overrides)
    if fresh:
        remove_run(cfg.run_dir)
    with stop_on_signals() as stop:
        try:
            summary = Recipe(cfg, console).run()
        except StageFailed as exc:
            console.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _stopped(stop, f"finished stages are kept in {cfg.run_dir}; rerun to resume")
    from rl.recipe_report import markdown

    console.print(markdown(summary), markup=False, highlight=False)
    console.print(f"summary: {cfg.run_dir}/summary.md, summary.png", markup=False)
    print(json.dumps(summary))


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
