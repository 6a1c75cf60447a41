"""Multi-turn roll-outs in TRL's GRPOTrainer (rl.multiturn): tool calls and simulated-user
turns, masks on exactly the policy's tokens, faults that end a row and never the step.

The simulated user answers from the scripted endpoint on loopback (a real HTTP server and
our real ChatClient). For the loop's bookkeeping the policy's turns are scripted (its
``_generate_single_turn`` plays a script per task), so masks can be checked token by token;
the last test runs one real GRPO step with the embedded policy generating.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from llm import ChatClient
from llm.endpoints import Endpoint
from llm.testing import Reply, Rule, Script, ScriptedEndpoint
from rl import trl_seam
from rl.multiturn import RolloutLimits, openai_messages, rollout_loop, with_multiturn

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

USER_REPLY = "And tomorrow?"
_CLIENTS: dict[str, ChatClient] = {}


def user_client(endpoint: Endpoint) -> ChatClient:
    """One client per endpoint for the whole module, opened on the roll-out loop."""
    if endpoint.base_url not in _CLIENTS:
        _CLIENTS[endpoint.base_url] = ChatClient(endpoint)
    return _CLIENTS[endpoint.base_url]


class WeatherDesk:
    """A test environment: an async tool, a sync tool, and a user on the scripted endpoint.

    The row's ``mode`` column picks a fault: ``tool_raises``, ``tool_hangs``, ``user_raises``
    (the endpoint answers 500), ``user_hangs``, ``user_garbage``; anything else is healthy.
    """

    endpoint: ClassVar[Endpoint | None] = None
    max_user_turns: ClassVar[int] = 2

    def reset(self, **row: Any) -> None:
        self.mode = str(row.get("mode") or "ok")
        self.failure: str | None = None
        self.user_turns = 0
        self.user_outcome: str | None = None
        self.calls = 0
        self.finished = 0
        self.notes: list[str] = []
        self.state: dict[str, Any] = {}
        self.conversations: list[list[dict[str, Any]]] = []

    async def weather(self, city: str) -> str:
        """Today's weather in a city.

        Args:
            city: The city's name.
        """
        self.calls += 1
        if self.mode == "tool_raises":
            raise ConnectionError("weather server died\nmid call")
        if self.mode == "tool_hangs":
            await asyncio.sleep(30)
        return f"sunny in {city}"

    def note(self, text: str) -> str:
        """Write a note for the user.

        Args:
            text: The note.
        """
        self.calls += 1
        self.notes.append(text)
        return "noted"

    async def user_turn(self, conversation: list[dict[str, Any]]) -> str | None:
        if self.user_turns >= self.max_user_turns:
            self.user_outcome = "max_user_turns"
            return None
        self.user_turns += 1
        self.conversations.append(conversation)
        if self.mode == "user_garbage":
            return "   "
        if self.mode == "user_hangs":
            await asyncio.sleep(30)
        assert self.endpoint is not None
        payload = json.dumps({"mode": self.mode, "conversation": conversation})
        result = await user_client(self.endpoint).chat([{"role": "user", "content": payload}])
        return result.content

    async def finish(self) -> None:
        self.finished += 1
        self.state = {"notes": list(self.notes)}


class ScriptedPolicy:
    """Plays the policy: the reply to the task named in the prompt (``[task:X]``), turn by
    turn, tokenized with the end-of-turn token; optionally with a logprob per token."""

    def __init__(self, tokenizer: Any, scripts: dict[str, list[str]], logprob: float | None = None):
        self.tokenizer, self.scripts, self.logprob = tokenizer, scripts, logprob
        self.played: list[list[int]] = []

    def __call__(
        self, prompt_ids: list[list[int]], images: Any, fields: Any, num_generations: int, **_: Any
    ) -> tuple[list[list[int]], list[list[float]] | None]:
        out = []
        for context in prompt_ids:
            text = self.tokenizer.decode(context)
            task = next(t for t in self.scripts if f"[task:{t}]" in text)
            turn = text.count("<|im_start|>assistant") - 1
            reply = self.scripts[task][min(turn, len(self.scripts[task]) - 1)]
            ids = self.tokenizer(reply + "<|im_end|>", add_special_tokens=False)["input_ids"]
            self.played.append(ids)
            out.append(ids)
        return out, None if self.logprob is None else [[self.logprob] * len(i) for i in out]


def weather_call(city: str) -> str:
    return f'<tool_call>\n{{"name": "weather", "arguments": {{"city": "{city}"}}}}\n</tool_call>'


def user_script(request: dict[str, Any]) -> Reply | str:
    return USER_REPLY


def reward(
    prompts: list[Any], completion_ids: list[list[int]], environments: list[Any], **_: Any
) -> list[float | None]:
    """Distinct tokens per policy token: varies between samples, so a step has a gradient."""
    return [
        None if env.failure else len(set(ids)) / max(env.policy_tokens, 1)
        for ids, env in zip(completion_ids, environments, strict=True)
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedEndpoint]:
    script = Script(
        rules=[Rule('"mode": "user_raises"', Reply(fault="500"))], responder=user_script
    )
    with ScriptedEndpoint(script) as endpoint:
        WeatherDesk.endpoint = endpoint.endpoint(max_retries=0, max_concurrency=32)
        yield endpoint
    for client in _CLIENTS.values():
        asyncio.run_coroutine_threadsafe(client.aclose(), rollout_loop()).result()
    _CLIENTS.clear()


def make_trainer(
    tmp: Path,
    *,
    max_completion_length: int,
    prompt: str = "[task:A] Weather?",
    batch: int = 2,
    **grpo: Any,
) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from llm.embedded.model import ensure_converted, load_tokenizer

    path = ensure_converted()
    rows = [{"prompt": [{"role": "user", "content": prompt}], "mode": "ok"}]
    args = GRPOConfig(
        output_dir=str(tmp),
        per_device_train_batch_size=batch,
        num_generations=batch,
        max_completion_length=max_completion_length,
        max_tool_calling_iterations=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        **grpo,
    )
    trainer_class = with_multiturn(GRPOTrainer)
    return trainer_class(
        model=str(path),
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(rows * 2),
        processing_class=load_tokenizer(path),
        environment_factory=WeatherDesk,
    )


@pytest.fixture(scope="module")
def trainer(module_dir: Path, server: ScriptedEndpoint) -> Any:
    trainer = make_trainer(module_dir, max_completion_length=160)
    trainer.model.train()  # metrics land under "train", as in a training step
    return trainer


def row(task: str, mode: str = "ok") -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": f"[task:{task}] Weather, please."}],
        "mode": mode,
    }


def play(trainer: Any, policy: ScriptedPolicy, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One batch through TRL's real generation and scoring with ``policy`` playing."""
    with (
        trl_seam.scripted_turns(trainer, policy),
        trl_seam.captured_generations(trainer) as captured,
    ):
        out = trl_seam.generate_and_score(trainer, rows)
    _, completion_ids, tool_mask, completions, *_ = captured[-1]
    return {
        "out": out,
        "completion_ids": completion_ids,
        "tool_mask": tool_mask,
        "completions": completions,
        "envs": list(trainer.environments),
        "metrics": {k: v[-1] for k, v in trl_seam.train_metrics(trainer).items() if v},
    }


def spans(ids: list[int], mask: list[int]) -> list[tuple[int, list[int]]]:
    """Runs of equal mask value: ``[(mask, ids), ...]``."""
    runs: list[tuple[int, list[int]]] = []
    for token, m in zip(ids, mask, strict=True):
        if runs and runs[-1][0] == m:
            runs[-1][1].append(token)
        else:
            runs.append((m, [token]))
    return runs


SCRIPT = {"A": [weather_call("Paris"), "It is sunny in Paris.", "Sunny again.", "Bye."]}


def test_masks_cover_exactly_the_policy_tokens(trainer: Any) -> None:
    tok = trainer.processing_class
    policy = ScriptedPolicy(tok, SCRIPT)
    result = play(trainer, policy, [row("A"), row("A")])
    for ids, mask, completion in zip(
        result["completion_ids"], result["tool_mask"], result["completions"], strict=True
    ):
        roles = [m["role"] for m in completion]
        assert roles == ["assistant", "tool", "assistant", "user", "assistant", "user", "assistant"]
        runs = spans(ids, mask)
        policy_text = [tok.decode(r) for m, r in runs if m == 1]
        assert policy_text == [
            weather_call("Paris") + "<|im_end|>",
            "It is sunny in Paris.<|im_end|>",
            "Sunny again.<|im_end|>",
            "Bye.<|im_end|>",
        ]
        masked = [tok.decode(r) for m, r in runs if m == 0]
        assert "sunny in Paris" in masked[0] and masked[0].endswith("<|im_start|>assistant\n")
        user_block = f"\n<|im_start|>user\n{USER_REPLY}<|im_end|>\n<|im_start|>assistant\n"
        assert masked[1:] == [user_block, user_block]
    # TRL carries the mask into the loss: the padded tensor starts with ours
    out = result["out"]
    first = result["tool_mask"][0]
    assert out["tool_mask"][0, : len(first)].tolist() == first


def test_masked_tokens_get_logprob_zero(trainer: Any) -> None:
    tok = trainer.processing_class
    policy = ScriptedPolicy(tok, SCRIPT, logprob=-0.5)
    with trl_seam.scripted_turns(trainer, policy):
        envs = bind(trainer, [row("A")])
        prompt_ids = trl_seam.tokenize_prompts(trainer, [row("A")["prompt"]])
        first, _ = policy(prompt_ids, None, {}, 1)
        completions = [[parse(trainer, first[0], prompt_ids[0])]]
        mask, _, ids, logprobs, *_ = trl_seam.play_tool_loop(
            trainer, [row("A")["prompt"]], prompt_ids, [first[0]], completions,
            [[-0.5] * len(first[0])],
        )  # fmt: skip
    assert envs[0].user_turns == 2
    assert len(logprobs[0]) == len(ids[0]) == len(mask[0])
    assert {lp for lp, m in zip(logprobs[0], mask[0], strict=True) if m == 0} == {0.0}
    assert {lp for lp, m in zip(logprobs[0], mask[0], strict=True) if m == 1} == {-0.5}


def bind(trainer: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """What TRL does before generating: an environment per row, reset, its tool dicts."""
    envs = [WeatherDesk() for _ in rows]
    for env, r in zip(envs, rows, strict=True):
        env.reset(**r)
    trl_seam.bind_batch(
        trainer,
        envs,
        [{"note": e.note} for e in envs],
        [{"weather": e.weather, "user_turn": e.user_turn, "finish": e.finish} for e in envs],
    )
    return envs


def parse(trainer: Any, ids: list[int], prefix: list[int]) -> dict[str, Any]:
    tools = trl_seam.environment_tools(trainer)[None]
    return dict(
        trl_seam.parse_response(trl_seam.tokenizer(trainer), ids, prefix=prefix, tools=tools)
    )


def test_the_user_sees_the_whole_conversation_as_openai_messages(
    trainer: Any, server: ScriptedEndpoint
) -> None:
    result = play(trainer, ScriptedPolicy(trainer.processing_class, SCRIPT), [row("A"), row("A")])
    env = result["envs"][0]
    seen = env.conversations[0]
    assert [m["role"] for m in seen] == ["user", "assistant", "tool", "assistant"]
    call = seen[1]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert seen[2]["tool_call_id"] == call["id"] and seen[2]["content"] == "sunny in Paris"
    sent = json.loads(server.requests[-1]["messages"][-1]["content"])
    assert sent["conversation"][-1]["role"] == "assistant"


def test_finish_runs_once_and_policy_tokens_count_only_the_policy(trainer: Any) -> None:
    result = play(trainer, ScriptedPolicy(trainer.processing_class, SCRIPT), [row("A"), row("A")])
    for env, mask in zip(result["envs"], result["tool_mask"], strict=True):
        assert env.finished == 1 and env.failure is None
        assert env.policy_tokens == sum(mask) < len(mask)
        assert env.user_outcome == "max_user_turns"
    assert result["metrics"]["agentic/user_turns"] == 2.0
    assert result["metrics"]["agentic/tool_calls"] == 1.0
    assert result["metrics"]["agentic/failures"] == 0.0


def test_hooks_are_never_shown_to_the_policy_as_tools(trainer: Any) -> None:
    names = {t.__name__ for t in trl_seam.environment_tools(trainer)[None]}
    assert names == {"weather", "note"}
    bind(trainer, [row("A")])
    prompt_ids = trl_seam.tokenize_prompts(trainer, [row("A")["prompt"]])
    rendered = trainer.processing_class.decode(prompt_ids[0])
    assert '"weather"' in rendered and "user_turn" not in rendered and "finish" not in rendered


def test_policy_mistakes_come_back_as_error_tool_messages(trainer: Any) -> None:
    script = {
        "M": [
            '<tool_call>\n{"name": "fly", "arguments": {}}\n</tool_call>',
            '<tool_call>\n{"name": "weather", "arguments": {"town": "Oslo"}}\n</tool_call>',
            "Sorry.",
        ]
    }
    result = play(trainer, ScriptedPolicy(trainer.processing_class, script), [row("M"), row("M")])
    completion = result["completions"][0]
    tools = [m["content"] for m in completion if m["role"] == "tool"]
    assert tools[0] == "error: tool fly not found"
    assert tools[1].startswith("error: bad arguments for weather")
    assert completion[-1]["role"] == "assistant"  # the policy played on
    assert result["envs"][0].failure is None
    assert result["metrics"]["tools/failure_frequency"] == 1.0


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("tool_raises", "tool weather raised ConnectionError: weather server died mid call"),
        ("tool_hangs", "tool weather timed out after 0.5 s"),
        ("user_raises", "user turn raised ProviderError"),
        ("user_hangs", "user turn timed out after 0.5 s"),
        ("user_garbage", "user turn returned ' ', not a message"),
    ],
)
def test_an_environment_fault_ends_its_row_and_is_counted(
    trainer: Any, mode: str, reason: str
) -> None:
    trainer.rollout_limits = RolloutLimits(tool_timeout_s=0.5, user_timeout_s=0.5)
    try:
        policy = ScriptedPolicy(trainer.processing_class, SCRIPT)
        result = play(trainer, policy, [row("A", mode), row("A")])
    finally:
        del trainer.rollout_limits
    broken, healthy = result["envs"]
    assert broken.failure is not None and broken.failure.startswith(reason)
    assert "\n" not in broken.failure
    assert result["completions"][0][-1]["role"] == "assistant"  # ended on its last policy turn
    assert healthy.failure is None and healthy.user_turns == 2
    assert result["completions"][1][-1]["content"] == "Bye."
    assert result["metrics"]["agentic/failures"] == 1.0
    assert broken.finished == healthy.finished == 1


def test_the_conversation_stops_on_a_policy_turn_when_the_budget_is_spent(trainer: Any) -> None:
    trainer.max_completion_length = 40
    try:
        result = play(trainer, ScriptedPolicy(trainer.processing_class, SCRIPT), [row("A")] * 2)
    finally:
        trainer.max_completion_length = 160
    for ids, completion in zip(result["completion_ids"], result["completions"], strict=True):
        assert len(ids) <= 40
        assert completion[-1]["role"] == "assistant"
    assert result["metrics"]["agentic/budget_stops"] >= 1.0
    assert result["envs"][0].user_turns < 2


def test_rows_talk_to_the_user_concurrently(trainer: Any) -> None:
    slow = ScriptedEndpoint(Script(responder=user_script), latency_s=0.3)
    with slow:
        endpoint, WeatherDesk.endpoint = WeatherDesk.endpoint, slow.endpoint(max_concurrency=32)
        try:
            rows = [row("A") for _ in range(4)]
            play(trainer, ScriptedPolicy(trainer.processing_class, SCRIPT), rows)
        finally:
            WeatherDesk.endpoint = endpoint
    assert len(slow.requests) == 8
    assert slow.max_in_flight == 4  # every row's user turn of a round at once


def test_openai_messages_pair_tool_results_with_their_calls() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "a", "arguments": {"x": 1}}},
                {"type": "function", "function": {"name": "b", "arguments": {}}},
            ],
        },
        {"role": "tool", "name": "a", "content": "1"},
        {"role": "tool", "name": "b", "content": "2"},
    ]
    out = openai_messages(messages)
    calls = out[1]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"x": 1}', "{}"]
    assert [m["tool_call_id"] for m in out[2:]] == [calls[0]["id"], calls[1]["id"]]
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"x": 1}  # not mutated


def test_with_multiturn_composes_with_the_ptx_trainer() -> None:
    from rl.multiturn import MultiTurnMixin
    from rl.ptx import PtxGRPOTrainer

    cls = with_multiturn(PtxGRPOTrainer)
    assert cls is with_multiturn(PtxGRPOTrainer)
    loop = trl_seam.TOOL_CALL_LOOP
    assert getattr(cls, loop) is getattr(MultiTurnMixin, loop)
    assert cls.compute_loss is PtxGRPOTrainer.compute_loss


@pytest.mark.integration
def test_one_real_grpo_step_with_a_user_in_the_loop(
    tmp_path: Path, server: ScriptedEndpoint
) -> None:
    import torch

    # "Hi!" gets a short greeting from SmolLM2, leaving room in the budget for the user.
    trainer = make_trainer(
        tmp_path, max_completion_length=96, prompt="Hi!", batch=4, max_steps=1,
        temperature=0.7, learning_rate=1e-4,
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    with trl_seam.captured_generations(trainer) as captured:
        trainer.train()
    _, completion_ids, tool_mask, completions, *_ = captured[0]
    assert any(m["role"] == "user" for c in completions for m in c), "a user turn was played"
    tok = trainer.processing_class
    for ids, mask, completion in zip(completion_ids, tool_mask, completions, strict=True):
        masked = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
        played = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 1])
        for message in completion:
            if message["role"] == "user":
                assert f"<|im_start|>user\n{message['content']}<|im_end|>" in masked
        assert "<|im_start|>user" not in played
    logged = trainer.state.log_history[0]
    assert {"agentic/user_turns", "agentic/tool_calls", "agentic/failures"} <= set(logged)
    assert logged["agentic/user_turns"] > 0
    assert trainer.state.global_step == 1
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed, "the optimizer stepped"
