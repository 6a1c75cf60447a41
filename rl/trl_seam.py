"""Every use of TRL's internals, in one place (TRL 1.16; pinned by tests/rl/test_trl_seam.py).

TRL's public API (``GRPOTrainer``, ``GRPOConfig``, ``SFTTrainer``, the chat-template
utilities) covers most of what ``rl`` needs. What it does not cover goes through here:

- the multi-turn roll-out: :mod:`rl.multiturn` overrides the trainer method named
  :data:`TOOL_CALL_LOOP` and reaches the batch it plays through the accessors below (the
  rows' tools, the policy's next turn, the tokens of a tool result);
- metrics our code adds to TRL's per-step averages (:func:`log_metric`,
  :func:`log_train_metric`);
- the fused log-prob head, re-applied when the sampling temperature changes
  (:func:`set_head_temperature`);
- for tests and benchmarks that drive TRL's generation directly: a scripted policy in
  place of the model (:func:`scripted_turns`), a batch bound by hand (:func:`bind_batch`),
  one pass of the roll-out loop (:func:`play_tool_loop`), TRL's generation captured
  (:func:`captured_generations`), its metrics and environment pool read.

When TRL moves one of these, the pins fail naming this module; nothing else in Summit,
its tests or its benchmarks reads a private name of TRL's (``tests/rl/test_trl_seam.py``
checks the sources).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from trl.chat_template_utils import parse_response
from trl.trainer.utils import (
    add_fused_lm_head,
    shutdown_event_loop_in_daemon,
    start_event_loop_in_daemon,
)

__all__ = [
    "TOOL_CALL_LOOP",
    "bind_batch",
    "captured_generations",
    "environment_pool",
    "environment_tools",
    "generate_and_score",
    "generate_turn",
    "log_metric",
    "log_train_metric",
    "parse_response",
    "play_tool_loop",
    "row_tool_functions",
    "row_tool_schemas",
    "scripted_turns",
    "set_head_temperature",
    "shutdown_event_loop_in_daemon",
    "start_event_loop_in_daemon",
    "tokenize_prompts",
    "tokenizer",
    "tool_suffix_ids",
    "train_metrics",
]

TOOL_CALL_LOOP = "_tool_call_loop"
"""The ``GRPOTrainer`` method :mod:`rl.multiturn` overrides: it plays the tool calls of a
batch and returns ``(tool_mask, completions, completion_ids, logprobs, tool_calls,
tool_failures, tool_images)``."""


def log_metric(trainer: Any, name: str, value: float) -> None:
    """Add ``value`` to this step's average of ``name`` (the seam TRL gives reward functions)."""
    trainer._log_metric(name, value)


def log_train_metric(trainer: Any, name: str, value: float) -> None:
    """Add ``value`` to the training metrics TRL averages at the next log (for code that
    runs in ``compute_loss``, outside the generation step ``log_metric`` belongs to)."""
    trainer._metrics["train"][name].append(value)


def set_head_temperature(model: Any, temperature: float, cast_to_fp32: bool, outputs: Any) -> None:
    """Re-apply TRL's fused log-prob head to ``model`` at ``temperature`` (its forward is
    patched once at construction, with the temperature baked in)."""
    model.__dict__.pop("forward", None)  # back to the class's forward, then re-patch
    kwargs = {"outputs": outputs} if outputs else {}
    add_fused_lm_head(model, temperature=temperature, cast_lm_head_to_fp32=cast_to_fp32, **kwargs)


def environment_tools(trainer: Any) -> dict[Any, list[Any]]:
    """The tool functions TRL listed per environment class (a dict the caller may edit)."""
    tools = getattr(trainer, "_env_tools", None)
    return tools if tools is not None else {}


def row_tool_schemas(trainer: Any, row: int) -> Any:
    """What TRL renders as row ``row``'s tools: its environment's tools, else the trainer's."""
    if trainer.environment_factories is not None:
        return trainer._env_tools[trainer._batch_environments[row]]
    return trainer.tools


def row_tool_functions(trainer: Any, row: int) -> dict[str, Any]:
    """Row ``row``'s callable tools by name, sync and async together."""
    return {**trainer._sync_tool_dicts[row], **trainer._async_tool_dicts[row]}


def generate_turn(trainer: Any, contexts: list[list[int]]) -> tuple[Any, Any]:
    """One batched generation continuing each token context: ``(new_ids, logprobs)``."""
    ids, logprobs = trainer._generate_single_turn(contexts, None, {}, num_generations=1)
    return ids, logprobs


def tool_suffix_ids(trainer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """The token ids of tool-result messages plus the next assistant header."""
    return list(trainer._get_tool_suffix_ids(messages))


def tokenizer(trainer: Any) -> Any:
    """The text tokenizer under the trainer's processing class."""
    return trainer._tokenizer


def environment_pool(trainer: Any) -> dict[str, list[Any]]:
    """The environment instances TRL keeps per environment class key."""
    return dict(trainer._environment_pool)


def train_metrics(trainer: Any) -> dict[str, list[float]]:
    """TRL's training metrics by name: every value logged since the last log flush."""
    return dict(trainer._metrics["train"])


def tokenize_prompts(trainer: Any, prompts: list[Any]) -> list[list[int]]:
    """The prompts' token ids as TRL renders them (tools of the batch included)."""
    ids, *_ = trainer._tokenize_prompts(prompts)
    return list(ids)


def bind_batch(
    trainer: Any,
    environments: list[Any],
    sync_tools: list[dict[str, Any]],
    async_tools: list[dict[str, Any]],
) -> None:
    """What TRL does before generating a batch, done by hand: one environment per row
    (all of the default class) and each row's tool functions."""
    trainer.environments = environments
    trainer._batch_environments = [None] * len(environments)
    trainer._sync_tool_dicts = sync_tools
    trainer._async_tool_dicts = async_tools


def play_tool_loop(
    trainer: Any,
    prompts: list[Any],
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    completions: list[list[dict[str, Any]]],
    logprobs: list[list[float]] | None,
) -> tuple[Any, ...]:
    """One call of the roll-out loop (:data:`TOOL_CALL_LOOP`) on a bound batch whose first
    turns are given: TRL's 7-tuple."""
    loop = getattr(trainer, TOOL_CALL_LOOP)
    return tuple(loop(prompts, prompt_ids, completion_ids, completions, logprobs, None, {}))


def generate_and_score(trainer: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """TRL's whole generation and scoring of one batch of dataset rows."""
    return dict(trainer._generate_and_score_completions(rows))


@contextmanager
def scripted_turns(trainer: Any, policy: Callable[..., tuple[Any, Any]]) -> Iterator[None]:
    """``policy`` plays the policy's turns for the block, called as TRL calls its one-turn
    generator: ``(prompt_ids, images, multimodal_fields, num_generations)`` →
    ``(new_ids, logprobs)``."""
    trainer._generate_single_turn = policy
    try:
        yield
    finally:
        del trainer._generate_single_turn


@contextmanager
def captured_generations(trainer: Any) -> Iterator[list[tuple[Any, ...]]]:
    """Every batch generation of the block, as TRL's ``_generate`` returns it
    (``prompt_ids, completion_ids, tool_mask, completions, ...``), in order."""
    generate = trainer._generate
    captured: list[tuple[Any, ...]] = []

    def capture(prompts: list[Any]) -> Any:
        captured.append(generate(prompts))
        return captured[-1]

    trainer._generate = capture
    try:
        yield captured
    finally:
        del trainer._generate
