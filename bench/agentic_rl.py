"""Benchmark agentic RL: how close multi-turn roll-outs come to the endpoint's bound.

Part 1, roll-out throughput. A batch of multi-turn tasks is played through the real
roll-out loop of ``rl.multiturn`` inside a real ``GRPOTrainer`` (embedded SmolLM2 loaded,
TRL's tokenizer, chat template, suffix rendering and response parsing): each row calls a
simulated tool, gets a user turn, calls it again, and so on, and every tool result and
user message is a model call to the scripted endpoint (latency L, capacity C: requests
past C wait). The policy's turns are scripted (same tokens every run), so the figure
measures the roll-out machinery, not generation speed. The bound is C/L requests per
second; the figure is the batch's requests per second as a fraction of it, and the
speedup over playing the same rows one roll-out at a time through the same loop (the
sequential time is measured on a few rows, 2 in ``--quick`` and 16 otherwise, and scaled
to the batch: each sequential roll-out takes the same five round trips).

    python bench/agentic_rl.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from llm import ChatClient
from llm.endpoints import Endpoint
from llm.testing import ScriptedEndpoint

TOOL_ROUNDS = 3
"""Simulated tool calls per roll-out; a user turn follows each answer but the last."""
USER_TURNS = TOOL_ROUNDS - 1


class BenchDesk:
    """A multi-turn environment whose simulated tool and user are both endpoint calls."""

    endpoint: ClassVar[Endpoint | None] = None
    clients: ClassVar[dict[str, ChatClient]] = {}

    def reset(self, **row: Any) -> None:
        self.failure: str | None = None
        self.user_turns = 0
        self.state: dict[str, Any] = {}

    def _client(self) -> ChatClient:
        assert self.endpoint is not None
        if self.endpoint.base_url not in self.clients:  # one for the run, on the roll-out loop
            self.clients[self.endpoint.base_url] = ChatClient(self.endpoint)
        return self.clients[self.endpoint.base_url]

    async def lookup(self, query: str) -> str:
        """Look something up (a simulated tool: the simulator model answers).

        Args:
            query: What to look up.
        """
        result = await self._client().chat([{"role": "user", "content": f"simulate: {query}"}])
        return str(result.content)

    async def user_turn(self, conversation: list[dict[str, Any]]) -> str | None:
        if self.user_turns >= USER_TURNS:
            return None
        self.user_turns += 1
        result = await self._client().chat([{"role": "user", "content": "next user message"}])
        return result.content

    async def finish(self) -> None:
        self.state = {"user_turns": self.user_turns}


class ScriptedTurns:
    """The policy: a tool call on even turns, a short answer on odd ones (ids made once)."""

    def __init__(self, tokenizer: Any) -> None:
        call = '<tool_call>\n{"name": "lookup", "arguments": {"query": "fares"}}\n</tool_call>'
        self.call = tokenizer(call + "<|im_end|>", add_special_tokens=False)["input_ids"]
        self.answer = tokenizer("Here it is.<|im_end|>", add_special_tokens=False)["input_ids"]
        self.header = tokenizer("<|im_start|>assistant", add_special_tokens=False)["input_ids"]

    def __call__(
        self, prompt_ids: list[list[int]], images: Any, fields: Any, num_generations: int, **_: Any
    ) -> tuple[list[list[int]], None]:
        return [self.call if self._turn(c) % 2 == 0 else self.answer for c in prompt_ids], None

    def _turn(self, context: list[int]) -> int:
        h = self.header
        heads = sum(context[k : k + len(h)] == h for k in range(len(context) - len(h) + 1))
        return heads - 1  # the last header opens the turn being generated


def build_trainer(out: str) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from llm.embedded.model import ensure_converted, load_tokenizer
    from rl.multiturn import with_multiturn

    path = ensure_converted()
    args = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=2048,
        report_to=[],
        use_cpu=True,
    )
    return with_multiturn(GRPOTrainer)(
        model=str(path),
        reward_funcs=[lambda prompts, **_: [0.0] * len(prompts)],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": "x"}]}] * 2),
        processing_class=load_tokenizer(path),
        environment_factory=BenchDesk,
    )


def play(trainer: Any, policy: ScriptedTurns, rows: int) -> tuple[float, int]:
    """Play ``rows`` roll-outs as one batch through the loop: (seconds, tool calls)."""
    from trl.chat_template_utils import parse_response

    envs = [BenchDesk() for _ in range(rows)]
    for env in envs:
        env.reset()
    trainer.environments, trainer._batch_environments = envs, [None] * rows
    trainer._sync_tool_dicts = [{} for _ in envs]
    trainer._async_tool_dicts = [{"lookup": e.lookup} for e in envs]
    prompts = [[{"role": "user", "content": "Find me the fares."}] for _ in range(rows)]
    prompt_ids, *_ = trainer._tokenize_prompts(prompts)
    first = [list(policy.call) for _ in range(rows)]
    tools = trainer._env_tools[None]
    completions = [
        [parse_response(trainer._tokenizer, ids, prefix=p, tools=tools)]
        for ids, p in zip(first, prompt_ids, strict=True)
    ]
    start = time.perf_counter()
    result = trainer._tool_call_loop(prompts, prompt_ids, first, completions, None, None, {})
    elapsed = time.perf_counter() - start
    assert all(e.user_turns == USER_TURNS and not e.failure for e in envs), "a roll-out fell short"
    return elapsed, int(result[4])


def measure_rollout(quick: bool) -> dict[str, Any]:
    """Roll-out throughput against the scripted endpoint's bound C/L, batch vs sequential."""
    latency, capacity = (0.5, 8) if quick else (0.5, 16)
    rows = 4 * capacity  # a GRPO batch is larger than an endpoint's capacity
    sequential_rows = 2 if quick else 16
    per_row = TOOL_ROUNDS + USER_TURNS
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(out)
        policy = ScriptedTurns(trainer.processing_class)
        trainer._generate_single_turn = policy
        with ScriptedEndpoint(latency_s=latency, capacity=capacity) as server:
            BenchDesk.endpoint = server.endpoint(max_concurrency=4 * rows)
            play(trainer, policy, 1)  # warm-up: client, loop, template caches
            served = len(server.requests)
            batch_s, calls = play(trainer, policy, rows)
            requests = len(server.requests) - served
            sequential_s = sum(play(trainer, policy, 1)[0] for _ in range(sequential_rows))
            max_in_flight = server.max_in_flight
            _close_clients()
    assert requests == rows * per_row and calls == rows * TOOL_ROUNDS
    bound = capacity / latency
    sequential_batch_s = sequential_s * rows / sequential_rows
    return {
        "rollout_bound_fraction": round(requests / batch_s / bound, 3),
        "rollout_speedup_vs_sequential": round(sequential_batch_s / batch_s, 2),
        "rollout_rows": rows,
        "rollout_requests": requests,
        "rollout_latency_s": latency,
        "rollout_capacity": capacity,
        "rollout_bound_rps": bound,
        "rollout_rps": round(requests / batch_s, 2),
        "rollout_batch_s": round(batch_s, 2),
        "rollout_sequential_s": round(sequential_batch_s, 2),
        "rollout_sequential_measured_rows": sequential_rows,
        "rollout_max_in_flight": max_in_flight,
    }


def _close_clients() -> None:
    from rl.multiturn import run_in_rollout_loop

    async def close() -> None:
        await asyncio.gather(*(c.aclose() for c in BenchDesk.clients.values()))

    run_in_rollout_loop(close())
    BenchDesk.clients.clear()


def table(figures: dict[str, Any]) -> Table:
    t = Table(title="Agentic RL: roll-out throughput (scripted endpoint, scripted policy turns)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_row("requests/s ÷ bound C/L", f"{figures['rollout_bound_fraction']:.3f}", "≥ 0.90")
    t.add_row(
        "speedup vs one roll-out at a time", f"{figures['rollout_speedup_vs_sequential']}×", ""
    )
    t.add_row(
        "batch",
        f"{figures['rollout_rows']} roll-outs, {figures['rollout_requests']} requests "
        f"in {figures['rollout_batch_s']} s",
        "",
    )
    t.add_row(
        "endpoint",
        f"L={figures['rollout_latency_s']} s, C={figures['rollout_capacity']}, "
        f"bound {figures['rollout_bound_rps']:.0f} req/s, measured {figures['rollout_rps']}",
        "",
    )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smaller endpoint and batch (about a minute)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    figures = measure_rollout(args.quick)
    Console().print(table(figures))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
