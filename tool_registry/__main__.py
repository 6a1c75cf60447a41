"""``python -m tool_registry``: import tools into a repository, describe it, export it.

Every command takes ``--registry PATH`` (default ``tools.jsonl``). Bad input exits 2 with
a one-line reason per problem; an import that fails as a whole leaves the file unchanged.
Tools imported as they are but worth a look (a ``required`` name no property declares)
are shown as ``warning:`` lines.
Lines of the repository that cannot be loaded are reported: reading commands skip them,
writing commands refuse to run (writing would drop them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from llm.yamlconf import YamlConfigError
from tool_registry.importers import ImportReport
from tool_registry.repository import ToolRepository

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown"
)
importer = typer.Typer(no_args_is_help=True, help="Import tools from a source.")
app.add_typer(importer, name="import")
console = Console()
REGISTRY = typer.Option(Path("tools.jsonl"), "--registry", help="The repository file (JSONL).")


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _repository(registry: Path, *, writing: bool) -> ToolRepository:
    """The repository at ``registry``; its unloadable lines are reported (skipped when only
    reading, refused when the command would write the file and so drop them)."""
    try:
        repo = ToolRepository.load(registry)
    except YamlConfigError as exc:
        _fail(str(exc))
    if repo.problems and writing:
        more = f" (and {len(repo.problems) - 1} more)" if len(repo.problems) > 1 else ""
        _fail(f"{repo.problems[0]}{more}; fix or remove it first: writing would drop it")
    for problem in repo.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    return repo


def _merge(report: ImportReport, repo: ToolRepository, registry: Path, strict: bool) -> None:
    failed = not report.specs or (strict and report.problems)
    if failed and len(report.problems) == 1:  # the one reason, on one line
        _fail(f"{report.problems[0]}; nothing written")
    for problem in report.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if strict and report.problems:
        _fail(f"{len(report.problems)} entries could not be imported; nothing written (--strict)")
    if not report.specs:
        _fail("no tool could be imported; nothing written")
    result = repo.add(report.specs)
    repo.save(registry)
    for old, new in result.renamed:
        print(f"renamed: {old} -> {new} (name clash with a different interface)", file=sys.stderr)
    print(
        f"{registry}: +{len(result.added)} tools "
        f"({len(result.duplicates) + report.repeated} duplicates, "
        f"{len(report.problems)} skipped); {len(repo)} in all"
    )


def _read(importer: Callable[[Path], ImportReport], file: Path) -> ImportReport:
    try:
        return importer(file)
    except YamlConfigError as exc:  # the file itself: missing, a directory, binary
        _fail(str(exc))


@importer.command("mcp")
def import_mcp_command(
    command: list[str] = typer.Argument(..., help="The server command line, after `--`."),
    registry: Path = REGISTRY,
    timeout: float = typer.Option(30.0, help="Seconds to wait for the server."),
    strict: bool = typer.Option(False, help="Write nothing if any tool is invalid."),
    env: list[str] = typer.Option(
        [], "--env", help="NAME=VALUE for the server's environment (repeatable)."
    ),
    allow: list[str] = typer.Option([], "--allow", help="Import only this tool (repeatable)."),
    deny: list[str] = typer.Option([], "--deny", help="Never import this tool (repeatable)."),
) -> None:
    """Import the tools of an MCP server run over stdio: `import mcp -- CMD [ARGS...]`."""
    from tool_registry.importers.mcp_server import MCPImportError, import_mcp

    variables = {}
    for item in env:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            _fail(f"--env {item!r}: give NAME=VALUE")
        variables[name.strip()] = value
    repo = _repository(registry, writing=True)
    try:
        report = import_mcp(
            command, timeout_s=timeout, env=variables, allow=allow or None, deny=deny
        )
    except MCPImportError as exc:
        _fail(str(exc))
    _merge(report, repo, registry, strict)


@importer.command("openai")
def import_openai_command(
    file: Path = typer.Argument(..., help="A JSON list of OpenAI tools, or one per line."),
    registry: Path = REGISTRY,
    strict: bool = typer.Option(False, help="Write nothing if any entry is invalid."),
) -> None:
    """Import OpenAI tool objects."""
    from tool_registry.importers.openai_tools import import_openai_tools

    repo = _repository(registry, writing=True)
    _merge(_read(import_openai_tools, file), repo, registry, strict)


@importer.command("function-docs")
def import_function_docs_command(
    file: Path = typer.Argument(..., help="JSON or JSONL: function docs, or rows nesting them."),
    registry: Path = REGISTRY,
    strict: bool = typer.Option(False, help="Write nothing if any entry is invalid."),
) -> None:
    """Import a function-doc collection or benchmark rows nesting them (BFCL's `function`
    lists); Python, Java and JavaScript type names are mapped to JSON Schema."""
    from tool_registry.importers.function_docs import import_function_docs

    repo = _repository(registry, writing=True)
    _merge(_read(import_function_docs, file), repo, registry, strict)


@app.command()
def evolve(
    config: Path | None = typer.Option(
        None, "--config", help="EvolveConfig YAML (default: built-in)."
    ),
    endpoint: str = typer.Option("embedded", help="Endpoint preset of the generator."),
    registry: Path = REGISTRY,
    overrides: list[str] = typer.Option([], "--set", help="Override a config field: key=value."),
) -> None:
    """Grow the repository by hierarchical domain evolution; rerun to resume."""
    import asyncio

    from pydantic import ValidationError
    from rich.progress import Progress

    from llm import ChatClient, Endpoint, LLMError, get_endpoint
    from llm.yamlconf import (
        CHECK_FILES,
        apply_overrides,
        error_message,
        format_loc,
        load_yaml_model,
    )
    from tool_registry.evolution import Evolution, EvolveConfig, EvolveReport, load_categories

    try:
        if config is not None:
            cfg = load_yaml_model(config, EvolveConfig, overrides, check_files=True)
        else:
            data = apply_overrides({}, overrides)
            cfg = EvolveConfig.model_validate(data, context={CHECK_FILES: True})
        total = len(load_categories(cfg)) * cfg.domains_per_category
    except YamlConfigError as exc:
        _fail(str(exc))
    except ValidationError as exc:  # of --set values without a config file
        _fail(
            "\n".join(
                f"--set {format_loc(tuple(e['loc']))}: {error_message(e)}" for e in exc.errors()
            )
        )
    _repository(registry, writing=True)

    async def run(ep: Endpoint) -> EvolveReport:
        with Progress(console=console) as progress:
            task = progress.add_task("domains", total=total)
            async with ChatClient(ep) as client:
                evolution = Evolution(
                    cfg, client, registry, on_domain=lambda _: progress.advance(task)
                )
                progress.advance(task, len(evolution.state["done"]))
                return await evolution.run()

    try:
        if endpoint == "embedded":
            from llm.embedded import embedded_endpoint

            with embedded_endpoint() as ep:
                report = asyncio.run(run(ep))
        else:
            report = asyncio.run(run(get_endpoint(endpoint)))
    except LLMError as exc:
        _fail(str(exc))
    print(json.dumps(report.model_dump()))


@app.command()
def stats(
    registry: Path = REGISTRY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Counts by source, category, domain, side effect and parameter count."""
    if not registry.exists():
        _fail(f"{registry}: no such repository")
    figures = _repository(registry, writing=False).stats()
    if as_json:
        print(json.dumps(figures))
        return
    console.print(f"{registry}: {figures['tools']} tools", highlight=False)
    for key in ("by_source", "by_side_effect", "by_parameter_count", "by_category", "by_domain"):
        table = Table(title=key.replace("_", " "))
        table.add_column("value")
        table.add_column("tools", justify="right")
        for value, count in sorted(figures[key].items(), key=lambda kv: -kv[1])[:20]:
            table.add_row(str(value), str(count))
        console.print(table)


@app.command()
def export(
    registry: Path = REGISTRY,
    format: str = typer.Option(
        "openai", help="openai (a JSON list of tools) or jsonl (ToolSpecs)."
    ),
    out: Path | None = typer.Option(None, help="Write here instead of standard output."),
) -> None:
    """Export the repository as OpenAI tools or as ToolSpec JSONL."""
    if not registry.exists():
        _fail(f"{registry}: no such repository")
    if out is not None and out.is_dir():
        _fail(f"{out}: is a directory, not a file")
    repo = _repository(registry, writing=False)
    specs = sorted(repo, key=lambda s: s.id)
    if format == "openai":
        text = json.dumps([s.to_openai() for s in specs], indent=2) + "\n"
    elif format == "jsonl":
        text = "".join(json.dumps(s.model_dump(mode="json", exclude={"id"})) + "\n" for s in specs)
    else:
        _fail(f"unknown format {format!r}: openai or jsonl")
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {len(specs)} tools to {out}")


if __name__ == "__main__":
    app()
