"""The embedded engine against this machine's limit and against the wave engine it replaced.

1. **Ceiling**: tokens/s of a bare greedy decoding loop of the same model, no server, no
   sampling, a static KV cache, at batch 8 and 16 — every row decoding every step, prompts
   already prefilled. Nothing that serves requests can beat it.
2. **Load**: synthesis-like episodes played against the continuous engine and against
   the wave engine (``llm/embedded/wave.py``, the engine before continuous batching), 8
   and 16 episodes in flight. An episode is 2-3 agent turns (24-64 tokens each) under one
   of three agent system prompts with a tool list, each answered by a tool result, then a
   judge's verdict (96 or 160 tokens) on the transcript under the judge's instructions;
   every request is sent after a pause of 0-0.3 s (a tool call, a sandbox run) and decoded
   to its full length. The same seeded episodes for both engines. Reported: generated
   tokens/s, as a fraction of the ceiling at the same batch (run at the load's mean
   prompt length), and the continuous engine's prefix-cache hit rate. Prefill is part of
   serving: the fraction counts it against the engine.
3. **Demo**: trajectories per minute of ``configs/synth/demo.yaml`` (``python -m synth
   run``, wall time of the whole command, model load included) at ``--before`` (the last
   commit with the wave engine and the old demo) and in this tree. Skipped by ``--quick``.

Decoding runs with the engine's thread count (half the cores; prefill takes all), the
ceiling too, so both use the same share of the machine.

    python bench/engine.py [--quick] [--json] [--before REV]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm.embedded.engine import BatchEngine, GenerationRequest, default_threads  # noqa: E402
from llm.embedded.model import load_model  # noqa: E402
from llm.embedded.wave import WaveEngine  # noqa: E402

BEFORE = "96152f7"
"""The last commit with the wave engine and the six-trajectory demo."""
AGENT_PROMPTS = [
    "You are a travel agent with these tools: search_flights(origin, destination, date), "
    "book_flight(flight_id, passenger), cancel_booking(booking_id), get_weather(city). " * 5,
    "You manage a calendar through tools: list_events(day), add_event(title, start, end), "
    "move_event(event_id, start), delete_event(event_id). Confirm before deleting. " * 5,
    "You are a support agent for an online shop: get_order(order_id), refund(order_id, "
    "reason), track_parcel(tracking_id). Quote the order id in every reply. " * 5,
]
JUDGE_PROMPT = (
    "You are a meticulous judge. Score the assistant's trajectory against the rubric. "
    "Quote the evidence, weigh each criterion, never reward an empty answer. " * 6
)


def ceiling(model: Any, batch: int, prompt_tokens: int, steps: int) -> float:
    """Tokens/s of a bare greedy loop over a static cache, prompts prefilled beforehand."""
    import torch
    from transformers.cache_utils import StaticCache

    torch.set_num_threads(default_threads())
    cache = StaticCache(config=model.config, max_cache_len=prompt_tokens + steps + 1)
    ids = torch.randint(100, 10_000, (batch, prompt_tokens))
    with torch.inference_mode():
        out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for step in range(steps):
            position = torch.tensor([prompt_tokens + step])
            out = model(
                input_ids=token,
                cache=cache,
                cache_position=position,
                position_ids=position.expand(batch, 1),
                use_cache=True,
                logits_to_keep=1,
            )
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        elapsed = time.perf_counter() - start
    torch.set_num_threads(os.cpu_count() or 1)
    return batch * steps / elapsed


@dataclass
class Episode:
    """One synthesis-like episode: agent turns, each answered by a tool result, then a
    judge's verdict on the transcript. Each request is sent after its pause."""

    system: str
    user: str
    tool_results: list[str]
    turn_tokens: list[int]
    judge_tokens: int
    pauses: list[float]


WORDS = ["flight", "Oslo", "refund", "meeting", "id", "status", "ok", "2026-12-01", "seat"]


def episodes(count: int, seed: int) -> list[Episode]:
    rng = random.Random(seed)

    def words(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))

    made = []
    for _ in range(count):
        turns = rng.randint(2, 3)
        made.append(
            Episode(
                system=rng.choice(AGENT_PROMPTS),
                user=words(10, 60),
                tool_results=[f'{{"result": "{words(10, 60)}"}}' for _ in range(turns)],
                turn_tokens=[rng.choice([24, 48, 64]) for _ in range(turns)],
                judge_tokens=rng.choice([96, 160]),
                pauses=[rng.uniform(0.0, 0.3) for _ in range(turns + 1)],
            )
        )
    return made


def play(engine: BatchEngine, tokenizer: Any, episode: Episode, seed: int) -> tuple[int, list[int]]:
    """Play one episode against ``engine``; the tokens it generated, its prompts' lengths."""
    prompts: list[int] = []

    def ask(messages: list[dict[str, str]], tokens: int, pause: float) -> str:
        time.sleep(pause)
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        prompts.append(len(ids))
        request = GenerationRequest(
            prompt_ids=ids, max_new_tokens=tokens, temperature=0.7, seed=seed, ignore_eos=True
        )
        return engine.submit(request).result().text

    messages = [
        {"role": "system", "content": episode.system},
        {"role": "user", "content": episode.user},
    ]
    turns = zip(episode.turn_tokens, episode.tool_results, episode.pauses, strict=False)
    for tokens, result, pause in turns:
        reply = ask(messages, tokens, pause)
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": result}]
    transcript = "\n".join(f"{m['role']}: {m['content']}" for m in messages[1:])
    judge = [{"role": "system", "content": JUDGE_PROMPT}, {"role": "user", "content": transcript}]
    ask(judge, episode.judge_tokens, episode.pauses[-1])
    return sum(episode.turn_tokens) + episode.judge_tokens, prompts


def serve_load(
    engine: BatchEngine, tokenizer: Any, plan: list[Episode], clients: int
) -> dict[str, Any]:
    """Play ``plan`` with ``clients`` episodes in flight; generated tokens/s over the run."""
    lock, queue, generated = threading.Lock(), list(enumerate(plan)), [0]
    prompts: list[int] = []

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index, episode = queue.pop(0)
            tokens, lengths = play(engine, tokenizer, episode, seed=index)
            with lock:
                generated[0] += tokens
                prompts.extend(lengths)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "tokens_per_s": generated[0] / elapsed,
        "seconds": elapsed,
        "mean_prompt": sum(prompts) // len(prompts),
    }


def profile(engine: BatchEngine, seconds: float) -> dict[str, float]:
    """Where the engine's time went: shares of the run's wall time."""
    stats = engine.stats
    other = stats.step_s - stats.forward_s - stats.sample_s - stats.constraint_s
    return {
        "prefill": stats.prefill_s / seconds,
        "forward": stats.forward_s / seconds,
        "sampling": stats.sample_s / seconds,
        "constraints": stats.constraint_s / seconds,
        "bookkeeping": other / seconds,
        "idle": max(0.0, 1 - (stats.prefill_s + stats.step_s) / seconds),
    }


def demo_rate(tree: Path, out: Path) -> dict[str, float]:
    """Trajectories per minute of the demo run from ``tree`` (wall time, model load included)."""
    config = yaml.safe_load((tree / "configs" / "synth" / "demo.yaml").read_text())
    config["output_dir"] = str(out)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("SUMMIT_EMBEDDED_URL", None)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "synth", "run", str(path)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    minutes = (time.perf_counter() - start) / 60
    if done.returncode != 0:
        raise SystemExit(f"the demo at {tree} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    return {
        "trajectories": counts["trajectories"],
        "accepted": counts["accepted"],
        "minutes": minutes,
        "per_min": counts["trajectories"] / minutes,
    }


def demos(before: str) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), before],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            return {
                "before": demo_rate(old, Path(tmp) / "run-before"),
                "after": demo_rate(ROOT, Path(tmp) / "run-after"),
            }
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)],
                cwd=ROOT,
                check=False,
                capture_output=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, no demo runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--before", default=BEFORE, help="the commit the demo is compared with")
    parser.add_argument(
        "--only", choices=["load", "demo"], help="measure one part: the engines, or the demo"
    )
    args = parser.parse_args()
    console = Console(stderr=args.json)
    results: dict[str, Any] = {}
    if args.only != "demo":
        results.update(load_part(args.quick, console))
    demo = None if args.quick or args.only == "load" else demos(args.before)
    results["demo_trajectories_per_min_before"] = (
        round(demo["before"]["per_min"], 2) if demo else None
    )
    results["demo_trajectories_per_min_after"] = (
        round(demo["after"]["per_min"], 2) if demo else None
    )
    if demo:
        results["demo"] = demo
        demo_table = Table(title="configs/synth/demo.yaml (python -m synth run, wall time)")
        for column in ("tree", "trajectories", "accepted", "minutes", "trajectories / min"):
            demo_table.add_column(column, justify="right")
        for name, row in demo.items():
            label = f"before ({args.before})" if name == "before" else "after (this tree)"
            demo_table.add_row(
                label,
                str(row["trajectories"]),
                str(row["accepted"]),
                f"{row['minutes']:.1f}",
                f"{row['per_min']:.2f}",
            )
        console.print(demo_table)
    if args.json:
        print(json.dumps(results))


def load_part(quick: bool, console: Console) -> dict[str, Any]:
    """The ceiling and both engines under the synthesis-like load, with their tables."""
    model, tokenizer = load_model()
    per_batch = 2 if quick else 4
    steps = 32 if quick else 64
    results: dict[str, Any] = {}
    rows = []
    for batch in (8, 16):
        plan = episodes(per_batch * batch, seed=batch)
        served: dict[str, dict[str, Any]] = {}
        for name, kind in (("continuous", BatchEngine), ("wave", WaveEngine)):
            console.print(f"[dim]{name} engine, {batch} in flight, {len(plan)} episodes…[/]")
            engine = kind(model, tokenizer, max_batch=batch)
            try:
                served[name] = serve_load(engine, tokenizer, plan, clients=batch)
                if name == "continuous":
                    served[name]["hit_rate"] = engine.prefix_cache.stats.hit_rate
                    served[name]["profile"] = profile(engine, served[name]["seconds"])
            finally:
                engine.close()
        mean_prompt = served["continuous"]["mean_prompt"]
        console.print(f"[dim]ceiling at batch {batch} ({mean_prompt}-token prompts)…[/]")
        top = ceiling(model, batch, mean_prompt, steps)
        results[f"ceiling_tokens_per_s_{batch}"] = round(top, 1)
        results[f"mean_prompt_tokens_{batch}"] = mean_prompt
        results[f"served_fraction_{batch}"] = round(served["continuous"]["tokens_per_s"] / top, 3)
        results[f"wave_fraction_{batch}"] = round(served["wave"]["tokens_per_s"] / top, 3)
        results[f"speedup_vs_wave_{batch}"] = round(
            served["continuous"]["tokens_per_s"] / served["wave"]["tokens_per_s"], 2
        )
        results[f"prefix_cache_hit_rate_{batch}"] = round(served["continuous"]["hit_rate"], 3)
        rows.append((batch, top, served))
    results["speedup_vs_wave"] = min(results["speedup_vs_wave_8"], results["speedup_vs_wave_16"])
    results["prefix_cache_hit_rate"] = results["prefix_cache_hit_rate_8"]
    table = Table(title="Embedded engine (tokens/s generated)")
    for column in (
        "in flight",
        "ceiling",
        "continuous",
        "wave",
        "continuous / ceiling",
        "wave / ceiling",
        "continuous / wave",
        "prefix hit rate",
    ):
        table.add_column(column, justify="right")
    for batch, top, served in rows:
        cont, wave = served["continuous"]["tokens_per_s"], served["wave"]["tokens_per_s"]
        table.add_row(
            str(batch),
            f"{top:.1f}",
            f"{cont:.1f}",
            f"{wave:.1f}",
            f"{cont / top:.2f}",
            f"{wave / top:.2f}",
            f"{cont / wave:.2f}×",
            f"{served['continuous']['hit_rate']:.2f}",
        )
    console.print(table)
    shares = Table(title="Where the continuous engine's time went (share of wall time)")
    shares.add_column("in flight", justify="right")
    for part in rows[0][2]["continuous"]["profile"]:
        shares.add_column(part, justify="right")
    for batch, _, served in rows:
        part_shares = served["continuous"]["profile"]
        shares.add_row(str(batch), *(f"{v:.3f}" for v in part_shares.values()))
        results[f"profile_{batch}"] = {k: round(v, 4) for k, v in part_shares.items()}
    console.print(shares)
    return results


if __name__ == "__main__":
    main()
