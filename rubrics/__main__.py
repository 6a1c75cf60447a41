"""``python -m rubrics``: validate, render, test and describe rubric files."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from llm import ChatClient, Endpoint, LLMError, get_endpoint
from rubrics.judge import keyed
from rubrics.loader import LIBRARY, RubricError, RubricSet
from rubrics.render import render_judge, render_pair
from rubrics.schema import Rubric

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown"
)
console = Console()
err = Console(stderr=True)


def _load(paths: list[Path]) -> RubricSet:
    """The given files plus the built-in library (so ``extends: [core]`` resolves)."""
    library_given = any(p.resolve().is_relative_to(LIBRARY) for p in paths)
    try:
        return RubricSet.load([*([] if library_given else [LIBRARY]), *paths])
    except RubricError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise typer.Exit(2) from exc


def _fail(message: str) -> NoReturn:
    """The message on stderr as one line (never wrapped or read as markup); exit 2."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def validate(paths: list[Path] = typer.Argument(..., help="Rubric files or folders.")) -> None:
    """Check rubric files; exit 2 with file:line messages when any is invalid."""
    rubric_set = _load(paths)
    console.print(f"ok: {len(rubric_set.rubrics)} rubrics valid", highlight=False)


@app.command()
def render(
    rubric_id: str = typer.Argument(..., help="Rubric id."),
    pair: bool = typer.Option(
        False, "--pair", help="The critic's pairwise prompt instead of the judge's."
    ),
    paths: list[Path] = typer.Option([], "--rubrics", help="Extra rubric files or folders."),
) -> None:
    """Print the exact prompt the judge (or, with --pair, the critic) sees for a rubric."""
    rubric_set = _load(paths)
    if rubric_id not in rubric_set:
        _fail(f"unknown rubric {rubric_id!r}; known: {', '.join(sorted(rubric_set.rubrics))}")
    criteria = keyed([rubric_id], rubric_set)
    if pair:
        text = render_pair("{prompt}", "{response A}", "{response B}", criteria)
    else:
        text = render_judge("{prompt}", "{response}", criteria)
    sys.stdout.write(text)


@app.command()
def test(
    paths: list[Path] = typer.Argument(
        ..., help="Rubric files or folders whose golden tests to run."
    ),
    endpoint: str = typer.Option("embedded", help="Endpoint preset of the judge."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON last."),
    reasoning_chars: int = typer.Option(1200, help="Longest reasoning the judge may write."),
) -> None:
    """Run golden tests; print agreement per rubric and overall."""
    from rubrics.golden import GoldenResult, run_golden

    rubric_set = _load(paths)
    wanted = _from(rubric_set, paths)

    async def run_all(ep: Endpoint) -> list[GoldenResult]:
        async with ChatClient(ep) as client:
            results = await asyncio.gather(
                *(
                    run_golden(rubric_set.get(rid), rubric_set, client, reasoning_chars)
                    for rid in wanted
                )
            )
        return [r for group in results for r in group]

    try:
        if endpoint == "embedded":
            from llm.embedded import embedded_endpoint

            with console.status("starting the embedded model"), embedded_endpoint() as ep:
                results = asyncio.run(run_all(ep))
        else:
            results = asyncio.run(run_all(get_endpoint(endpoint)))
    except LLMError as exc:
        _fail(f"error: {exc}")
    figures = _report(results, wanted, endpoint)
    if as_json:
        print(json.dumps(figures))


def _from(rubric_set: RubricSet, paths: list[Path]) -> list[str]:
    """Ids of the rubrics loaded from ``paths`` (not from the library added beside them)."""
    roots = [p.resolve() for p in paths]
    return [
        rid
        for rid, source in rubric_set.sources.items()
        if any(source.path.resolve().is_relative_to(root) for root in roots)
    ]


def _report(results: list[Any], wanted: list[str], endpoint: str) -> dict[str, Any]:
    """Print agreement and errors per rubric, then each disagreement; return the figures."""
    table = Table(title=f"golden tests on {endpoint}")
    for column in ("rubric", "tests", "agree", "errors", "agreement"):
        table.add_column(column)
    per_rubric = {}
    for rid in [*wanted, None]:
        mine = [r for r in results if rid is None or r.rubric == rid]
        agree = sum(r.agrees for r in mine)
        share = agree / len(mine) if mine else None
        if rid is not None:
            per_rubric[rid] = share
        errors = sum(r.got.startswith("error") for r in mine)
        cells = [str(len(mine)), str(agree), str(errors)]
        table.add_row(rid or "overall", *cells, "-" if share is None else f"{share:.2f}")
    console.print(table)
    for r in results:
        if not r.agrees:
            console.print(
                f"{r.rubric} tests[{r.index}] ({r.kind}): expected {r.expected}, got {r.got}",
                markup=False,
                highlight=False,
            )
    return {
        "agreement": sum(r.agrees for r in results) / len(results) if results else 0.0,
        "per_rubric": per_rubric,
        "tests": len(results),
        "errors": sum(r.got.startswith("error") for r in results),
    }


@app.command()
def schema() -> None:
    """Print the JSON Schema of a rubric file (for yaml-language-server)."""
    print(json.dumps(rubric_json_schema(), indent=2))


def rubric_json_schema() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **Rubric.model_json_schema()}


if __name__ == "__main__":
    app()
