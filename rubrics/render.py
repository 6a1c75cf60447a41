"""Render the judge and critic prompts from the Jinja templates in ``rubrics/prompts``.

Candidates are embedded between markers carrying a nonce derived from the content, and
any ``<<<`` inside a candidate is defused, so a candidate can neither close its own block
nor forge another one. Rendering is pure: the same inputs give the same prompt (cache
friendly, snapshot tested). Nothing here calls a model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2

from rubrics.schema import Criterion

PROMPTS = Path(__file__).resolve().parent / "prompts"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PROMPTS),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)

Keyed = list[tuple[str, str, Criterion]]


def defuse(text: str) -> str:
    """Make ``text`` unable to open or close a marker block."""
    return text.replace("<<<", "‹‹‹").replace(">>>", "›››")


def nonce(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]


def transcript(messages: list[dict[str, Any]]) -> str:
    """A trajectory (OpenAI messages) as plain text for a judge."""
    lines = []
    for m in messages:
        role = m.get("role", "?")
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if role == "tool":
            lines.append(f"[tool result {m.get('tool_call_id', '')}] {content or ''}")
            continue
        if content:
            lines.append(f"[{role}] {content}")
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            lines.append(
                f"[{role} calls {fn.get('name')}] {fn.get('arguments')} (id {call.get('id')})"
            )
    return "\n".join(lines)


def as_text(item: str | list[dict[str, Any]]) -> str:
    return item if isinstance(item, str) else transcript(item)


def render_judge(prompt: str, candidate: str | list[dict[str, Any]], criteria: Keyed) -> str:
    text = defuse(as_text(candidate))
    return _env.get_template("judge.jinja").render(
        prompt=defuse(prompt),
        candidate=text,
        criteria=criteria,
        nonce=nonce(prompt, text),
        what="Candidate response" if isinstance(candidate, str) else "Candidate trajectory",
    )


def render_pair(prompt: str, a: str, b: str, criteria: Keyed) -> str:
    a, b = defuse(a), defuse(b)
    return _env.get_template("pair.jinja").render(
        prompt=defuse(prompt), a=a, b=b, criteria=criteria, nonce=nonce(prompt, a, b)
    )
