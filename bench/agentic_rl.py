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

Part 2, learning. The embedded SmolLM2-135M policy trains with GRPO through
``rl.trainer.build`` and ``Services`` (the path of ``python -m rl train``) on
``configs/grpo/ask-user.yaml``: eight bank tasks where the user has two savings accounts
and the agent must ask which one (a hidden fact) before calling ``transfer``; the reward
is 1 when the final ledger is the expected one. The simulated user is a scripted endpoint
on loopback, reached through an endpoint preset (``SUMMIT_ENDPOINTS``), that plays fair
and deterministically: asked a question, it reveals its hidden fact; told the work is
done, it is satisfied; otherwise it restates its goal. The mean reward of each step is
recorded and plotted; the figures are the means of the first and last five steps (half
the steps each when fewer than ten run: three of ``--quick``'s 6). A 135M model proves the
plumbing, not quality: the question is whether the reward moves.

    python bench/agentic_rl.py [--quick] [--json] [--steps N] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from llm import ChatClient
from llm.endpoints import Endpoint
from llm.testing import Reply, ScriptedEndpoint

ROOT = Path(__file__).resolve().parents[1]
TOOL_ROUNDS = 3
"""Simulated tool calls per roll-out; a user turn follows each answer but the last."""
USER_TURNS = TOOL_ROUNDS - 1
DEFAULT_OUT = ROOT / "runs" / "bench" / "agentic_rl"


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
    from rl import trl_seam

    envs = [BenchDesk() for _ in range(rows)]
    for env in envs:
        env.reset()
    trl_seam.bind_batch(trainer, envs, [{} for _ in envs], [{"lookup": e.lookup} for e in envs])
    prompts = [[{"role": "user", "content": "Find me the fares."}] for _ in range(rows)]
    prompt_ids = trl_seam.tokenize_prompts(trainer, prompts)
    first = [list(policy.call) for _ in range(rows)]
    tools = trl_seam.environment_tools(trainer)[None]
    tokenizer = trl_seam.tokenizer(trainer)
    completions = [
        [trl_seam.parse_response(tokenizer, ids, prefix=p, tools=tools)]
        for ids, p in zip(first, prompt_ids, strict=True)
    ]
    start = time.perf_counter()
    result = trl_seam.play_tool_loop(trainer, prompts, prompt_ids, first, completions, None)
    elapsed = time.perf_counter() - start
    assert all(e.user_turns == USER_TURNS and not e.failure for e in envs), "a roll-out fell short"
    return elapsed, int(result[4])


def measure_rollout(quick: bool) -> dict[str, Any]:
    """Roll-out throughput against the scripted endpoint's bound C/L, batch vs sequential."""
    latency, capacity = (0.5, 8) if quick else (0.5, 16)
    rows = 4 * capacity  # a GRPO batch is larger than an endpoint's capacity
    sequential_rows = 2 if quick else 16
    per_row = TOOL_ROUNDS + USER_TURNS
    from rl import trl_seam

    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(out)
        policy = ScriptedTurns(trainer.processing_class)
        with (
            trl_seam.scripted_turns(trainer, policy),
            ScriptedEndpoint(latency_s=latency, capacity=capacity) as server,
        ):
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


# ------------------------------------------------------------------ part 2: learning
ASK_USER = ROOT / "configs" / "grpo" / "ask-user.yaml"
USER_PRESET = "bench-scripted-user"
ASKED = re.compile(r"\?")
DONE = re.compile(r"\b(done|transferred|moved|sent|completed)\b", re.IGNORECASE)


class FairUser:
    """The scripted user's responder: reads the user prompt ``synth.user`` renders (goal,
    hidden facts, the visible conversation) and answers in its ``UserTurn`` JSON.

    Asked a question (the agent's last text has a ``?``), it reveals its hidden facts;
    told the work is done, it is ``satisfied``; otherwise it restates its goal. ``counts``
    tallies the three answers."""

    def __init__(self) -> None:
        self.counts = {"revealed": 0, "satisfied": 0, "restated": 0}

    def __call__(self, request: dict[str, Any]) -> Reply:
        prompt = str(request["messages"][-1]["content"])
        head, _, rest = prompt.partition('The conversation so far (you are "user"):\n')
        conversation = rest.partition("\nWrite your next message.")[0]
        goal = re.search(r"^What you want: (.*)$", head, re.MULTILINE)
        facts = re.findall(r"^- [^:\n]+: (.+)$", head.partition("reveal only when")[2], re.M)
        said = conversation.rpartition("[assistant] ")[2] if "[assistant] " in conversation else ""
        if ASKED.search(said) and facts:
            answer, status, kind = f"It is {', '.join(facts)}.", "continue", "revealed"
        elif DONE.search(said):
            answer, status, kind = "Thanks, that is all.", "satisfied", "satisfied"
        else:
            answer, status, kind = (
                (goal.group(1) if goal else "Please do it."),
                "continue",
                "restated",
            )
        self.counts[kind] += 1
        return Reply(content=json.dumps({"message": answer, "status": status}))


@contextlib.contextmanager
def user_preset(url: str) -> Iterator[None]:
    """Make ``USER_PRESET`` an endpoint preset for ``url``: a copy of the presets file with
    it added, named by ``SUMMIT_ENDPOINTS`` while the block runs (so ``Services.endpoint``
    and ``llm.get_endpoint`` resolve it as they would any preset)."""
    import yaml

    from llm.endpoints import presets_path

    presets = yaml.safe_load(presets_path().read_text(encoding="utf-8"))
    presets[USER_PRESET] = {
        "description": "bench/agentic_rl.py: the scripted, fair simulated user",
        "base_url": url,
        "api_key_required": False,
        "model": "scripted",
        "timeout_s": 30,
        "max_retries": 1,
    }
    before = os.environ.get("SUMMIT_ENDPOINTS")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "endpoints.yaml"
        path.write_text(yaml.safe_dump(presets), encoding="utf-8")
        os.environ["SUMMIT_ENDPOINTS"] = str(path)
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("SUMMIT_ENDPOINTS", None)
            else:
                os.environ["SUMMIT_ENDPOINTS"] = before


def ask_user_config(out: Path, steps: int) -> Any:
    """``configs/grpo/ask-user.yaml`` with the bench's user preset, steps and output."""
    from rl.config import TrainConfig, load_config

    data = load_config(ASK_USER).model_dump(mode="json")
    data["gyms"][0]["options"]["user"]["endpoint"] = USER_PRESET
    data["grpo"]["max_steps"] = steps
    data["output_dir"] = str(out / "run")
    data["logging"] = {"progress": True, "report_to": []}
    return TrainConfig.model_validate(data)


def step_rewards(log_history: list[dict[str, Any]]) -> list[float]:
    """The tool_use gym's mean reward of each logged step (every step is logged)."""
    return [e["rewards/tool_use/mean"] for e in log_history if "rewards/tool_use/mean" in e]


def measure_learning(quick: bool, steps: int | None, out: Path) -> dict[str, Any]:
    """Train the ask-user family; per-step rewards, first/last means and the PNG."""
    from rl.trainer import Services, build

    steps = steps or (6 if quick else 30)
    user = FairUser()
    with ScriptedEndpoint(user) as server, user_preset(server.url):
        cfg = ask_user_config(out, steps)
        start = time.perf_counter()
        with Services(cfg) as services:
            trainer = build(cfg, services, progress_every_s=30.0)
            trainer.train()
        elapsed = time.perf_counter() - start
    rewards = step_rewards(trainer.state.log_history)
    window = min(5, len(rewards) // 2)  # 3 of --quick's 6 steps; never overlapping
    first, last = rewards[:window], rewards[-window:]
    png = out / "reward_per_step.png"
    plot(rewards, png)
    return {
        "reward_first5": round(sum(first) / len(first), 4),
        "reward_last5": round(sum(last) / len(last), 4),
        "learning_window": window,
        "learning_steps": len(rewards),
        "learning_rewards": [round(r, 4) for r in rewards],
        "learning_s_per_step": round(elapsed / max(1, len(rewards)), 1),
        "learning_user_turns": dict(user.counts),
        "learning_plot": str(png),
    }


def plot(rewards: list[float], path: Path) -> None:
    from grpo_learns import plot as reward_plot  # bench/ is on sys.path when run as a script

    reward_plot(
        rewards,
        path,
        ylabel="mean reward (expected final state)",
        title="embedded SmolLM2-135M on ask-user (scripted fair user)",
        ylim=(-0.05, 1.05),
    )


def measure(quick: bool, steps: int | None = None, out: Path = DEFAULT_OUT) -> dict[str, Any]:
    """Both parts: roll-out throughput, then learning."""
    return {**measure_rollout(quick), **measure_learning(quick, steps, out)}


def rollout_table(figures: dict[str, Any]) -> Table:
    t = Table(title="Agentic RL 1: roll-out throughput (scripted endpoint, scripted policy turns)")
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


def learning_table(figures: dict[str, Any]) -> Table:
    n = figures["learning_window"]
    t = Table(title="Agentic RL 2: GRPO on ask-user (embedded SmolLM2-135M, scripted fair user)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("steps", f"{figures['learning_steps']} ({figures['learning_s_per_step']} s/step)")
    t.add_row(f"mean reward, first {n} steps", f"{figures['reward_first5']:.3f}")
    t.add_row(f"mean reward, last {n} steps", f"{figures['reward_last5']:.3f}")
    t.add_row(
        "user answers", ", ".join(f"{k} {v}" for k, v in figures["learning_user_turns"].items())
    )
    t.add_row("plot", figures["learning_plot"])
    return t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smaller endpoint and batch, 6 training steps (first/last 3)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 30)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the PNG goes")
    parser.add_argument(
        "--part", choices=["all", "rollout", "learning"], default="all", help="run one part only"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    figures: dict[str, Any] = {}
    if args.part in ("all", "rollout"):
        figures.update(measure_rollout(args.quick))
        Console().print(rollout_table(figures))
    if args.part in ("all", "learning"):
        figures.update(measure_learning(args.quick, args.steps, args.out))
        Console().print(learning_table(figures))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
