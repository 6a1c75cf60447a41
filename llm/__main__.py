"""``python -m llm``: serve the embedded model or a checkpoint, serve a scripted endpoint,
list presets, run the tool-calling demo."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from llm.errors import LLMError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown"
)
console = Console()
err = Console(stderr=True)


def _fail(exc: Exception | str) -> NoReturn:
    """One line per problem on stderr, as written (never wrapped or read as markup); exit 2."""
    err.print(f"error: {exc}", style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def serve(
    model: Path | None = typer.Option(
        None,
        "--model",
        help="A local Hugging Face model directory to serve (a full model, or a LoRA adapter "
        "merged into its base); default: the embedded SmolLM2.",
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Interface to bind; keep loopback unless you mean it."
    ),
    port: int = typer.Option(0, help="Port; 0 picks a free one."),
    max_batch: int = typer.Option(16, help="Requests decoded together at most."),
    threads: int = typer.Option(
        0, help="Decoding threads; 0: half the cores (prefill always takes every core)."
    ),
    prefix_cache_mb: float = typer.Option(
        512,
        min=0,
        help="Memory for the keys of shared prompt prefixes, reused across "
        "requests; 0 turns the prefix cache off.",
    ),
) -> None:
    """Serve the embedded SmolLM2 model, or a checkpoint (`--model PATH`), as an
    OpenAI-compatible endpoint with tool calling, constrained JSON and batching."""
    from llm.embedded.model import check_checkpoint

    if model is not None:
        try:  # before torch is imported, the model loaded or a port bound
            check_checkpoint(model)
        except LLMError as exc:
            _fail(exc)
    from llm.embedded import EmbeddedServer

    server = EmbeddedServer(
        host=host,
        port=port,
        max_batch=max_batch,
        threads=threads or None,
        model_path=model,
        prefix_cache_mb=prefix_cache_mb,
    )
    what = f"the checkpoint {model}" if model else "the embedded model (first run converts it)"
    with console.status(f"loading {what}"):
        try:
            server.start()
        except (LLMError, RuntimeError) as exc:
            _fail(exc)

    def say(line: str) -> None:  # whole lines, never wrapped: they are meant to be copied
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    say(f"serving {server.url} as model {server.model_name}  (Ctrl-C stops)")
    if model is None:
        say(f"use it as the `embedded` preset:  export SUMMIT_EMBEDDED_URL={server.url}")
    else:
        say(
            f"point a config role at this server:  {{preset: embedded, base_url: {server.url}, "
            f"model: {server.model_name}}}"
        )
        say(f"or let a run serve the checkpoint itself:  {{preset: embedded, model_path: {model}}}")
    server.serve_forever()


@app.command()
def scripted(
    port: int = typer.Option(0, help="Port; 0 picks a free one."),
    latency: float = typer.Option(0.0, help="Seconds each request takes."),
    capacity: int = typer.Option(0, help="Requests served at once (0: unbounded)."),
    reply: str = typer.Option("ok", help="The reply to every request."),
) -> None:
    """Serve a scripted OpenAI-compatible endpoint on 127.0.0.1 (for trials and benchmarks)."""
    from llm.testing import Script, ScriptedEndpoint

    server = ScriptedEndpoint(
        Script(default=reply), latency_s=latency, capacity=capacity or None, port=port
    )
    server.start()
    console.print(f"serving {server.url}", highlight=False)
    sys.stdout.flush()
    server.serve_forever()


@app.command()
def endpoints() -> None:
    """List the endpoint presets in configs/endpoints.yaml."""
    from llm.endpoints import load_presets, presets_path

    try:
        presets = load_presets()
    except LLMError as exc:
        _fail(exc)
    table = Table(title=str(presets_path()))
    for column in ("name", "model", "key from", "concurrency", "$/M in", "$/M out", "description"):
        table.add_column(column)
    for name, p in presets.items():
        table.add_row(
            name,
            p.model,
            p.api_key_env or "-",
            str(p.max_concurrency),
            f"{p.price.input_per_mtok:g}",
            f"{p.price.output_per_mtok:g}",
            p.description,
        )
    console.print(table)


@app.command()
def demo(
    endpoint: str = typer.Option(
        "embedded", help="Endpoint preset; `embedded` starts the model here."
    ),
    question: str = typer.Option(
        "What is the weather in Paris, in Fahrenheit?", help="The user's question."
    ),
    out: Path = typer.Option(
        Path("runs/demo/transcript.json"), help="Where to write the transcript."
    ),
) -> None:
    """A tool-calling conversation against an endpoint, printed and saved as OpenAI messages."""
    from llm.demo import conversation, save_transcript
    from llm.endpoints import get_endpoint

    logging.basicConfig(level=logging.WARNING)
    if out.is_dir():
        _fail(f"{out}: is a directory, not a file")
    try:
        if endpoint == "embedded":
            from llm.embedded import embedded_endpoint

            with console.status("starting the embedded model"), embedded_endpoint() as ep:
                messages = asyncio.run(conversation(ep, question))
        else:
            messages = asyncio.run(conversation(get_endpoint(endpoint), question))
    except LLMError as exc:
        _fail(exc)
    for m in messages:
        body = m.content if isinstance(m.content, str) else json.dumps(m.content or "")
        for call in m.tool_calls or []:
            body += f"\n→ {call.function.name}({call.function.arguments})"
        console.print(Panel(body or "(empty)", title=m.role, title_align="left", expand=False))
    path = save_transcript(messages, out)
    console.print(f"transcript: {path}  ({len(messages)} messages)")
    tool_turns = sum(1 for m in messages if m.role == "tool")
    console.print(json.dumps({"messages": len(messages), "tool_results": tool_turns}))


if __name__ == "__main__":
    app()
