"""Which completions of a TRL reward call form one GRPO group, and their plain text.

TRL repeats each prompt ``num_generations`` times in consecutive rows and calls a reward
function once per local generation batch, so a batch holds several groups and, when a
group straddles two processes or accumulation slices, a part of one. A group here is a
maximal run of consecutive rows with the same prompt, cut into chunks of at most
``num_generations``: two identical prompts drawn back to back still make two groups, and a
partial group is ranked on what this process holds.

Not here: ranking (``rl.critique.reward``), verifier scores (``rl.critique.agreement``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Group:
    """Rows ``indices`` of the batch: completions of one prompt."""

    indices: list[int]
    prompt: str
    domain: str


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


def prompt_text(value: Any) -> str:
    """What the critic reads as the task: the last user message (or the string prompt)."""
    return text_of(value, role="user")


def key(*parts: str) -> str:
    """A stable hash of text parts (cache and score-board keys)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def groups(
    prompts: list[Any], num_generations: int, domains: list[str] | None = None
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
            out.append(_group(current, prompts, domains))
            current = []
        signature = this
        current.append(i)
    if current:
        out.append(_group(current, prompts, domains))
    return out


def _group(indices: list[int], prompts: list[Any], domains: list[str] | None) -> Group:
    domain = (domains[indices[0]] if domains else None) or "default"
    return Group(list(indices), prompt_text(prompts[indices[0]]), str(domain))
