"""Every use of TRL's internals, in one place (TRL 1.16; pinned by tests/rl/test_trl_seam.py).

TRL's public API (``GRPOTrainer``, ``GRPOConfig``, ``SFTTrainer``, the chat-template
utilities) covers most of what ``rl`` needs. What it does not cover goes through here:

- the multi-turn roll-out: :mod:`rl.multiturn` overrides the trainer method named
  :data:`TOOL_CALL_LOOP` and reaches the batch it plays through the accessors below (the
  rows' tools, the policy's next turn, the tokens of a tool result);
- metrics our code adds to TRL's per-step averages (:func:`log_metric`,
  :func:`log_train_metric`);
- the fused log-prob head, re-applied when the sampling temperature changes
  (:func:`set_head_temperature`).

When TRL moves one of these, the pins fail naming this module; nothing else in Summit
reads a private name of TRL's (``tests/rl/test_trl_seam.py`` checks the sources).
"""

from __future__ import annotations

from typing import Any

from trl.chat_template_utils import parse_response
from trl.trainer.utils import add_fused_lm_head, start_event_loop_in_daemon

__all__ = [
    "TOOL_CALL_LOOP",
    "environment_tools",
    "generate_turn",
    "log_metric",
    "log_train_metric",
    "parse_response",
    "row_tool_functions",
    "row_tool_schemas",
    "set_head_temperature",
    "start_event_loop_in_daemon",
    "tokenizer",
    "tool_suffix_ids",
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
