"""Benchmark the llm layer: client efficiency against its bound, and embedded batching.

1. The client against the scripted endpoint (a separate process) with fixed latency L
   and capacity C: achieved requests/s over the physical bound C/L, for C in 8, 64, 256.
2. The embedded endpoint: generated tokens/s with 1 and with 8 concurrent requests.

    python bench/llm_client.py [--quick] [--json]

Prints a table; with --json the last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm.client import ChatClient
from llm.endpoints import local_endpoint
from llm.types import Message

console = Console(stderr=True)


def start_scripted(latency: float, capacity: int) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "llm",
        "scripted",
        "--latency",
        str(latency),
        "--capacity",
        str(capacity),
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("serving "):
        proc.kill()
        raise RuntimeError(f"scripted endpoint did not start: {line!r}")
    return proc, line.split()[1]


async def client_rate(url: str, capacity: int, requests: int) -> float:
    endpoint = local_endpoint(url, name="scripted", max_concurrency=capacity, timeout_s=60)
    async with ChatClient(endpoint) as client:
        ask = [Message(role="user", content="ping")]
        await asyncio.gather(*(client.chat(ask) for _ in range(capacity)))  # warm connections
        started = time.perf_counter()
        await asyncio.gather(*(client.chat(ask) for _ in range(requests)))
        return requests / (time.perf_counter() - started)


def client_efficiency(latency: float, rounds: int) -> dict[str, dict[str, float]]:
    results = {}
    for capacity in (8, 64, 256):
        proc, url = start_scripted(latency, capacity)
        try:
            rate = asyncio.run(client_rate(url, capacity, capacity * rounds))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        bound = capacity / latency
        results[str(capacity)] = {"rps": rate, "bound_rps": bound, "efficiency": rate / bound}
    return results


async def embedded_rate(endpoint, concurrency: int, requests: int, max_tokens: int) -> float:
    async with ChatClient(endpoint) as client:

        async def one(i: int) -> int:
            ask = [
                Message(
                    role="user", content=f"Write a short story about a lighthouse keeper, part {i}."
                )
            ]
            result = await client.chat(ask, max_tokens=max_tokens, temperature=0.8, seed=i)
            return result.usage.completion_tokens

        started = time.perf_counter()
        tokens = 0
        for wave in range(0, requests, concurrency):
            counts = await asyncio.gather(*(one(wave + i) for i in range(concurrency)))
            tokens += sum(counts)
        return tokens / (time.perf_counter() - started)


def embedded_batching(max_tokens: int, waves: int) -> dict[str, float]:
    from llm.embedded import EmbeddedServer

    with EmbeddedServer(max_batch=8) as server:
        endpoint = server.endpoint()
        asyncio.run(embedded_rate(endpoint, 1, 1, 8))  # warm up
        one = asyncio.run(embedded_rate(endpoint, 1, waves, max_tokens))
        eight = asyncio.run(embedded_rate(endpoint, 8, 8 * waves, max_tokens))
    return {"tps_1": one, "tps_8": eight}


CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Delhi", "Rome", "Quito"]
CITY_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "country": {"type": "string"},
        "population": {"type": "integer"},
    },
    "required": ["city", "country", "population"],
}


def json_modes() -> dict[str, dict[str, float]]:
    """Schema-valid answers from the embedded model: constrained decoding vs resampling."""
    import jsonschema

    from llm.embedded import EmbeddedServer

    async def ask(endpoint) -> tuple[int, float]:
        fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": CITY_SCHEMA}}
        async with ChatClient(endpoint) as client:
            started = time.perf_counter()
            results = await asyncio.gather(
                *(
                    client.chat(
                        [Message(role="user", content=f"Describe {city} as JSON.")],
                        response_format=fmt,
                        max_tokens=80,
                        seed=i,
                    )
                    for i, city in enumerate(CITIES)
                )
            )
            elapsed = time.perf_counter() - started
        valid = 0
        for result in results:
            try:
                jsonschema.validate(json.loads(result.content or ""), CITY_SCHEMA)
                valid += 1
            except (ValueError, jsonschema.ValidationError):
                pass
        return valid, elapsed

    out = {}
    for mode in ("constrained", "retry"):
        with EmbeddedServer(max_batch=8, json_mode=mode, json_retries=3) as server:
            valid, elapsed = asyncio.run(ask(server.endpoint()))
        out[mode] = {"valid": valid, "total": len(CITIES), "seconds": elapsed}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument(
        "--latency", type=float, default=2.0, help="scripted endpoint latency L in seconds"
    )
    args = parser.parse_args()
    latency = args.latency
    rounds = 3 if args.quick else 8
    console.print(f"client efficiency: L={latency}s, {rounds} rounds per capacity")
    efficiency = client_efficiency(latency, rounds)
    console.print("embedded endpoint: tokens/s at 1 and 8 concurrent requests")
    embedded = embedded_batching(max_tokens=32 if args.quick else 64, waves=1 if args.quick else 2)

    modes = {} if args.quick else json_modes()

    table = Table(title="llm layer" + (" (--quick)" if args.quick else ""))
    for column in ("measure", "achieved", "bound / baseline", "ratio", "target"):
        table.add_column(column, justify="right")
    for capacity, row in efficiency.items():
        table.add_row(
            f"client req/s, C={capacity}, L={latency}s",
            f"{row['rps']:.1f}",
            f"{row['bound_rps']:.1f} (C/L)",
            f"{row['efficiency']:.3f}",
            ">= 0.90",
        )
    speedup = embedded["tps_8"] / embedded["tps_1"]
    table.add_row(
        "embedded tokens/s, 8 concurrent",
        f"{embedded['tps_8']:.1f}",
        f"{embedded['tps_1']:.1f} (1 at a time)",
        f"{speedup:.2f}x",
        ">= 3x",
    )
    for mode, row in modes.items():
        table.add_row(
            f"embedded JSON schema, {mode}",
            f"{row['valid']}/{row['total']} valid",
            f"{row['seconds']:.1f} s for all",
            "",
            "all valid",
        )
    Console(width=120).print(table)
    if args.json:
        figures = {
            "client_efficiency": {c: round(r["efficiency"], 4) for c, r in efficiency.items()},
            "embedded_tokens_per_s_1": round(embedded["tps_1"], 2),
            "embedded_tokens_per_s_8": round(embedded["tps_8"], 2),
            "embedded_batching_speedup": round(speedup, 3),
        }
        for mode, row in modes.items():
            figures[f"json_{mode}_valid"] = row["valid"] / row["total"]
            figures[f"json_{mode}_s"] = round(row["seconds"], 2)
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
