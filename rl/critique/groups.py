"""Which completions of a TRL reward call form one GRPO group, and what the critic reads.

TRL repeats each prompt ``num_generations`` times in consecutive rows and calls a reward
function once per local generation batch, so a batch holds several groups and, when a
group straddles two processes or accumulation slices, a part of one. A group here is a
maximal run of consecutive rows with the same prompt, cut into chunks of at most
``num_generations``: two identical prompts drawn back to back still make two groups, and a
partial group is ranked on what this process holds.

The critic reads whole trajectories: a group's task is its prompt messages (the system
prompt and the user's task, shown once per comparison: the *shared prefix*), and each
candidate is its completion messages — the user's later turns, tool calls with their
arguments, tool results, the final answer — rendered and cut to ``max_chars`` by
:mod:`rubrics.transcript`. A plain task or answer (one message) is shown as its text.

Not here: ranking (``rl.critique.reward``), verifier scores (``rl.critique.agreement``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from rubrics.transcript import Rendered, render_candidate, render_task


@dataclass(frozen=True)
class Group:
    """Rows ``indices`` of the batch: completions of one prompt."""

    indices: list[int]
    prompt: str
    """The shared prefix the critic reads (rendered, cut to the budget)."""
    domain: str
    prompt_cut: int = 0
    """Characters of the prompt cut to fit the budget."""


def text_of(value: Any, role: str = "assistant") -> str:
    """The final ``role`` text of a completion (messages or a plain string)."""
    if isinstance(value, str):
        return value
    for message in reversed(value or []):
        if isinstance(message, dict) and message.get("role") == role:
            content = message.get("content")
            if isinstance(content, str):
                return content
    return ""


def task_of(prompt: Any, max_chars: int | None = None) -> Rendered:
    """What the critic reads as the task: the prompt's system and user messages."""
    return render_task(prompt if isinstance(prompt, str) else _messages(prompt), max_chars)


def candidate_of(completion: Any, max_chars: int | None = None) -> Rendered:
    """What the critic reads of one completion: its whole trajectory (or its text)."""
    return render_candidate(
        completion if isinstance(completion, str) else _messages(completion), max_chars
    )


def _messages(value: Any) -> list[dict[str, Any]]:
    return [m for m in value or [] if isinstance(m, dict)]


def key(*parts: str) -> str:
    """A stable hash of text parts (cache and score-board keys)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def groups(
    prompts: list[Any],
    num_generations: int,
    domains: list[str] | None = None,
    max_chars: int | None = None,
) -> list[Group]:
    """The groups of a reward call, in batch order.

    >>> [g.indices for g in groups(["p", "p", "q", "q", "q"], 2)]
    [[0, 1], [2, 3], [4]]
    """
    out: list[Group] = []
    current: list[int] = []
    signature = None
    for i, prompt in enumerate(prompts):
        this = json.dumps(prompt, sort_keys=True, default=str)
        if current and (this != signature or len(current) == num_generations):
            out.append(_group(current, prompts, domains, max_chars))
            current = []
        signature = this
        current.append(i)
    if current:
        out.append(_group(current, prompts, domains, max_chars))
    return out


def _group(
    indices: list[int], prompts: list[Any], domains: list[str] | None, max_chars: int | None
) -> Group:
    domain = (domains[indices[0]] if domains else None) or "default"
    task = task_of(prompts[indices[0]], max_chars)
    return Group(list(indices), task.text, str(domain), task.cut)
