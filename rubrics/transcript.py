"""A trajectory (OpenAI messages) as text for a judge or a critic, cut to a budget by one rule.

Each message becomes a block whose first line opens with a tag — ``[system]``, ``[user]``,
``[assistant]``, ``[assistant calls NAME] ARGUMENTS (id ID)``, ``[tool result ID]`` — and
whose further lines are indented by two spaces, so no message text can start a line that
reads as a tag: a candidate cannot forge a tool result or a user turn. (Markers that
delimit whole candidates are defused separately, in :mod:`rubrics.render`.)

**The cut rule.** A rendering longer than ``max_chars`` loses characters — just enough —
from its bodies in this order, each cut body keeping its first and last characters around
a marker ``[... N characters cut ...]``, and never shrinking below :data:`KEEP` characters:

1. tool results' bodies, oldest first (the last result last);
2. the text of the turns before the final answer (the user's turns, the assistant's text
   between tool calls), oldest first;
3. tool calls' arguments, oldest first (a call's tag — its name and id — always stays);
4. the final answer (the last assistant text), last of all.

So what a judge most needs — which tools were called, with what, and what the agent
finally said — is the last thing cut, and a cut is always visible (the marker, and
:attr:`Rendered.cut`, which callers report as a metric). The budget is approximate (tags
and markers are not cut); a rendering whose bodies are all at :data:`KEEP` stays longer.

Not here: the prompt templates (``rubrics/prompts``), defusing (``rubrics.render``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KEEP = 120
"""The fewest characters a cut body keeps (its first and last sixty)."""
TOOL_RESULT, TURN, ARGUMENTS, FINAL = range(4)
"""Cut order of the body kinds (lowest first)."""


@dataclass(frozen=True)
class Rendered:
    """A rendering and how many characters the cut rule removed (0: shown whole)."""

    text: str
    cut: int = 0


@dataclass
class _Body:
    tag: str
    text: str
    kind: int
    order: int
    suffix: str = ""
    """Shown after the body, never cut (a tool call's id)."""


def marker(count: int) -> str:
    return f"[... {count} characters cut ...]"


def render_messages(messages: list[dict[str, Any]], max_chars: int | None = None) -> Rendered:
    """``messages`` as tagged text, cut to about ``max_chars`` by the rule above.

    >>> render_messages([{"role": "user", "content": "Hi"}]).text
    '[user] Hi'
    """
    bodies = _bodies(messages)
    cut = 0
    if max_chars is not None:
        excess = len(_join(bodies)) - max_chars
        for body in sorted(bodies, key=lambda b: (b.kind, b.order)):
            if excess <= 0:
                break
            removed = _shrink(body, excess)
            excess -= removed[1]
            cut += removed[0]
    return Rendered(_join(bodies), cut)


def render_candidate(item: str | list[dict[str, Any]], max_chars: int | None = None) -> Rendered:
    """A candidate shown to a judge or critic: a plain answer (a string, or one assistant
    text message without tool calls) as its text, anything else as a tagged transcript."""
    plain = _plain(item, "assistant")
    if plain is None:
        assert not isinstance(item, str)
        return render_messages(item, max_chars)
    body = _Body("", plain, FINAL, 0)
    count = _shrink(body, len(plain) - max_chars)[0] if max_chars is not None else 0
    return Rendered(body.text, count)


def render_task(prompt: str | list[dict[str, Any]], max_chars: int | None = None) -> Rendered:
    """The shared prefix of a comparison: a lone user message as its text, a prompt with a
    system message (or several turns) as a tagged transcript."""
    plain = _plain(prompt, "user")
    if plain is not None:
        body = _Body("", plain, TURN, 0)
        count = _shrink(body, len(plain) - max_chars)[0] if max_chars is not None else 0
        return Rendered(body.text, count)
    assert not isinstance(prompt, str)
    return render_messages(prompt, max_chars)


def _plain(item: str | list[dict[str, Any]], role: str) -> str | None:
    if isinstance(item, str):
        return item
    messages = [m for m in item if isinstance(m, dict)]
    if len(messages) == 1 and messages[0].get("role") == role and not messages[0].get("tool_calls"):
        return _content(messages[0])
    return None


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content) if content else ""


def _bodies(messages: list[dict[str, Any]]) -> list[_Body]:
    final = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant" and _content(m)),
        default=-1,
    )
    last_result = max((i for i, m in enumerate(messages) if m.get("role") == "tool"), default=-1)
    bodies: list[_Body] = []
    for index, m in enumerate(messages):
        role = m.get("role", "?")
        content = _content(m)
        if role == "tool":
            order = len(messages) + index if index == last_result else index
            tag = f"[tool result {m.get('tool_call_id', '')}] "
            bodies.append(_Body(tag, content, TOOL_RESULT, order))
            continue
        if content:
            bodies.append(_Body(f"[{role}] ", content, FINAL if index == final else TURN, index))
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            arguments = fn.get("arguments")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False, default=str)
            tag = f"[{role} calls {fn.get('name')}] "
            bodies.append(_Body(tag, arguments, ARGUMENTS, index, f" (id {call.get('id')})"))
    return bodies


def _join(bodies: list[_Body]) -> str:
    return "\n".join(b.tag + b.text.replace("\n", "\n  ") + b.suffix for b in bodies)


def _shrink(body: _Body, excess: int) -> tuple[int, int]:
    """Cut ``body`` by up to ``excess`` characters (not below :data:`KEEP`): the characters
    cut and the characters the rendering lost (indentation and the marker included)."""
    if excess <= 0 or len(body.text) <= KEEP:
        return 0, 0
    before = _rendered_len(body.text)
    count = min(len(body.text) - KEEP, excess + len(marker(excess)))
    if count <= len(marker(count)):
        return 0, 0
    keep = len(body.text) - count
    head, tail = body.text[: keep - keep // 2], body.text[len(body.text) - keep // 2 :]
    body.text = f"{head}{marker(count)}{tail}"
    return count, before - _rendered_len(body.text)


def _rendered_len(text: str) -> int:
    return len(text) + 2 * text.count("\n")
