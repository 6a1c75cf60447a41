"""Synthesis on a busy machine: goodput beside CPU hogs, and work thrown away.

A small synthesis job (`python -m synth run`, every role on the embedded model, no
Docker share) runs three times against one embedded server started here: alone, beside
CPU hogs that would take about half of the machine's cores, and beside hogs that would
take about three quarters (a hog is a busy loop; a fractional one sleeps between bursts).
For each run: whether it completed, trajectories per minute of the whole job relative to
the unloaded run, and the share of the tokens the engine decoded that went to requests
whose client had given up (read from the server's counters before and after).

Targets: every loaded run completes; goodput with half the CPU taken >= 0.4 of unloaded;
wasted tokens <= 5%.

    python bench/overload.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm.embedded import EmbeddedServer  # noqa: E402
from llm.embedded.engine import BatchEngine, GenerationRequest, default_threads  # noqa: E402
from llm.embedded.model import load_model  # noqa: E402
from llm.endpoints import EMBEDDED_URL_ENV  # noqa: E402

LOADS = {"unloaded": 0.0, "half": 0.5, "three_quarters": 0.75}
"""Share of the machine's cores the hogs would take if they ran alone."""


def hog(duty: float) -> None:
    """Busy-loop ``duty`` of every 100 ms slice, sleep the rest."""
    while True:
        start = time.perf_counter()
        while time.perf_counter() - start < 0.1 * duty:
            pass
        if duty < 1.0:
            time.sleep(0.1 * (1.0 - duty))


@contextmanager
def hogs(share: float) -> Iterator[int]:
    """Processes that take ``share`` of all cores between them; yields how many."""
    cores = share * (os.cpu_count() or 1)
    duties = [1.0] * int(cores) + ([cores - int(cores)] if cores - int(cores) > 0.01 else [])
    spawn = multiprocessing.get_context("spawn")  # no fork of a process serving a model
    procs = [spawn.Process(target=hog, args=(d,), daemon=True) for d in duties]
    for proc in procs:
        proc.start()
    try:
        yield len(procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join()


def decode_rate(model: object, tokenizer: object, threads: int, rows: int = 8) -> float:
    """Tokens/s of one batch of ``rows`` sampled rows through the engine, ``threads`` deep."""
    engine = BatchEngine(model, tokenizer, max_batch=rows, threads=threads)
    prompt = tokenizer("Write a long story about a cat.")["input_ids"]  # type: ignore[operator]
    try:
        started = time.perf_counter()
        futures = [
            engine.submit(GenerationRequest(prompt, max_new_tokens=48, temperature=1.0, seed=i))
            for i in range(rows)
        ]
        tokens = sum(f.result().completion_tokens for f in futures)
        return tokens / (time.perf_counter() - started)
    finally:
        engine.close()


def thread_table(console: Console) -> dict[str, dict[int, float]]:
    """Decoding tokens/s with one thread and with every core, alone and beside the hogs."""
    model, tokenizer = load_model()
    cores = os.cpu_count() or 1
    rates: dict[str, dict[int, float]] = {}
    for name, share in LOADS.items():
        with hogs(share):
            rates[name] = {t: decode_rate(model, tokenizer, t) for t in sorted({1, cores})}
        console.print(f"decoding {name}: {rates[name]}")
    return rates


def job(out: Path, quick: bool) -> dict[str, object]:
    """The demo job, smaller, without its Docker share (the load is the point, not Docker)."""
    demo = yaml.safe_load((ROOT / "configs/synth/demo.yaml").read_text())
    demo.update(
        name="overload",
        output_dir=str(out),
        environment_mix={"simulated": 1, "executable": 1, "docker": 0},
        agents={"count": 2 if quick else 3, "tools_min": 2, "tools_max": 3},
        tasks={"per_agent": 1 if quick else 2},
    )
    return demo


def counters(server: EmbeddedServer) -> dict[str, int]:
    assert server.engine is not None
    return dataclasses.asdict(server.engine.stats)


def run_once(server: EmbeddedServer, share: float, quick: bool, work: Path) -> dict[str, float]:
    out = work / f"run-{share}"
    config = work / f"job-{share}.yaml"
    config.write_text(yaml.safe_dump(job(out, quick)))
    env = {**os.environ, EMBEDDED_URL_ENV: server.url}
    before = counters(server)
    with hogs(share):
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "synth", "run", str(config)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        wall = time.perf_counter() - started
    after = counters(server)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    trajectories = (manifest.get("counts") or {}).get("trajectories", 0)
    generated = after["tokens_generated"] - before["tokens_generated"]
    wasted = after["tokens_abandoned"] - before["tokens_abandoned"]
    if proc.returncode != 0:
        Console(stderr=True).print(proc.stderr[-2000:], highlight=False, markup=False)
    return {
        "completed": float(proc.returncode == 0 and bool(manifest.get("reconciled"))),
        "wall_s": wall,
        "trajectories": float(trajectories),
        "per_min": trajectories / (wall / 60) if wall else 0.0,
        "tokens": float(generated),
        "wasted_tokens": float(wasted),
        "refused_rows": float(after["rows_refused"] - before["rows_refused"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 agents x 1 task per run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    console = Console(stderr=True)
    rates = thread_table(console)
    runs: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(max_batch=8) as server:
        for name, share in LOADS.items():
            console.print(f"running the job {name} ...")
            runs[name] = run_once(server, share, args.quick, Path(tmp))
    base = runs["unloaded"]["per_min"] or 1.0
    tokens = sum(r["tokens"] for r in runs.values())
    figures: dict[str, object] = {
        "completed_all": all(r["completed"] for r in runs.values()),
        "goodput_ratio_half": runs["half"]["per_min"] / base,
        "goodput_ratio_three_quarters": runs["three_quarters"]["per_min"] / base,
        "wasted_token_fraction": sum(r["wasted_tokens"] for r in runs.values()) / (tokens or 1),
        "quick": args.quick,
    }
    table = Table(title="synthesis beside CPU hogs (every role on the embedded model)")
    for column in ("load", "completed", "trajectories", "wall s", "per min", "vs unloaded"):
        table.add_column(column, justify="right")
    table.add_column("tokens wasted", justify="right")
    for name, r in runs.items():
        table.add_row(
            name,
            "yes" if r["completed"] else "NO",
            f"{r['trajectories']:.0f}",
            f"{r['wall_s']:.0f}",
            f"{r['per_min']:.2f}",
            f"{r['per_min'] / base:.2f}",
            f"{r['wasted_tokens']:.0f} / {r['tokens']:.0f}",
        )
    Console().print(table)
    cores = os.cpu_count() or 1
    threads = Table(
        title=f"engine decoding, tokens/s (batch 8; default threads: {default_threads()})"
    )
    threads.add_column("load")
    for t in sorted({1, cores}):
        threads.add_column(f"{t} thread{'s' if t > 1 else ''}", justify="right")
    for name, by_threads in rates.items():
        threads.add_row(name, *(f"{by_threads[t]:.1f}" for t in sorted({1, cores})))
    Console().print(threads)
    figures["decode_tokens_per_s"] = {
        n: {str(t): round(r, 1) for t, r in v.items()} for n, v in rates.items()
    }
    if args.json:
        print(
            json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()})
        )


if __name__ == "__main__":
    main()
