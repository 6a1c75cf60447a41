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
from rubrics.transcript import Rendered, render_messages

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


def transcript(messages: list[dict[str, Any]], max_chars: int | None = None) -> str:
    """A trajectory (OpenAI messages) as tagged text for a judge (:mod:`rubrics.transcript`:
    message text cannot forge a tag; ``max_chars`` cuts it by the documented rule)."""
    return render_messages(messages, max_chars).text


def as_text(item: str | list[dict[str, Any]], max_chars: int | None = None) -> Rendered:
    """A response as itself, a trajectory as its transcript (cut to ``max_chars``)."""
    return Rendered(item) if isinstance(item, str) else render_messages(item, max_chars)


def render_judge(
    prompt: str,
    candidate: str | list[dict[str, Any]],
    criteria: Keyed,
    max_chars: int | None = None,
) -> str:
    """The judge prompt; a trajectory longer than ``max_chars`` is cut (see
    :mod:`rubrics.transcript`), a plain response never is."""
    text = defuse(as_text(candidate, max_chars).text)
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
