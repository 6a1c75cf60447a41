"""``report.html``: one self-contained page about a run (no scripts, no network).

The funnel (tools → agents → tasks → trajectories → accepted), rejects by reason, what
was caught as degenerate text by rule (trajectories rejected before the judge, judge
answers that were garbage, generated agents and tasks not used), counts
by domain and environment kind, the judge-score histogram, turns and tool calls per
trajectory, tokens and cost per role, and a sample of trajectories rendered as chats with
their tool calls and results. Charts are inline SVG drawn here; the page is a Jinja
template beside this module (``html/report.html.jinja``), autoescaped.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from synth.filters import DEGENERATE
from synth.schema import Manifest
from synth.store import RunStore, atomic_write

SAMPLE = 12


def bars(chart: str, items: Sequence[tuple[str, float]], *, unit: str = "") -> Markup:
    """A horizontal bar chart as inline SVG (``data-chart`` names it for tests and CSS)."""
    width, row, label_w = 560, 22, 200
    top = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg class="chart" data-chart="{escape(chart)}" width="{width}" '
        f'height="{row * max(1, len(items)) + 4}" role="img" aria-label="{escape(chart)}">'
    ]
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        w = (width - label_w - 70) * value / top
        parts.append(
            f'<text x="0" y="{y + 15}">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{row - 6}"></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{value:g}{escape(unit)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(values: list[float], edges: list[float]) -> list[tuple[str, float]]:
    """Counts per bin ``[lo, hi)``; the last bin also holds its upper edge."""
    bins = list(itertools.pairwise(edges))
    counts: Counter[tuple[float, float]] = Counter()
    for v in values:
        for lo, hi in bins:
            if lo <= v < hi or (hi == edges[-1] and v == hi):
                counts[(lo, hi)] += 1
                break
    return [(f"{lo:g}–{hi:g}", counts[(lo, hi)]) for lo, hi in bins]


def _sample(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rng = random.Random(0)
    picked = []
    for outcome in ("accepted", "rejected"):
        group = [r for r in rows if r["outcome"] == outcome]
        picked += rng.sample(group, min(SAMPLE // 2, len(group)))
    for row in picked:
        row["tools_list"] = [t["function"]["name"] for t in json.loads(row["tools"] or "[]")]
    return picked


def caught(manifest: Manifest) -> list[tuple[str, int, str]]:
    """Rows ``(what, count, meaning)`` for the degenerate text caught by rule in this run.

    Every filter reason is listed, zeros included, so a reader sees what was looked for.
    """
    rejected, counts = manifest.rejected_by_reason, manifest.counts
    rows = [(reason, rejected.get(reason, 0), meaning) for reason, meaning in DEGENERATE.items()]
    return [
        *rows,
        (
            "judge_error",
            rejected.get("judge_error", 0),
            "the judge failed or answered garbage (degenerate reasoning, or a very short "
            "rationale naming nothing of its criterion): no score was given",
        ),
        (
            "agents_with_templated_prompt",
            counts.agents_with_templated_prompt,
            "generated system prompts not used (call failed or degenerate): templated instead",
        ),
        (
            "tasks_degenerate",
            counts.tasks_degenerate,
            "generated tasks not used: degenerate goal or success criteria",
        ),
    ]


def write_report(store: RunStore, manifest: Manifest) -> Path:
    rows = list(store.rows())
    metas = [json.loads(r["trajectory_meta"] or "null") or {} for r in rows]
    counts = manifest.counts.model_dump()
    scores = [r["score"] for r in rows if r["score"] is not None]
    turns = [float(m.get("turns", 0)) for m in metas]
    calls = [float(m.get("tool_calls", 0)) for m in metas]
    charts = {
        "funnel": bars(
            "funnel",
            [(k, counts[k]) for k in ("tools", "agents", "tasks", "trajectories", "accepted")],
        ),
        "rejects": bars("rejects", list(manifest.rejected_by_reason.items())),
        "environments": bars(
            "environments",
            [(f"{k} accepted", v.get("accepted", 0)) for k, v in manifest.by_environment.items()]
            + [(f"{k} rejected", v.get("rejected", 0)) for k, v in manifest.by_environment.items()],
        ),
        "domains": bars("domains", [(k, sum(v.values())) for k, v in manifest.by_domain.items()]),
        "scores": bars("scores", histogram(scores, [i / 10 for i in range(11)])),
        "turns": bars("turns", histogram(turns, [1, 2, 3, 4, 6, 10, 100])),
        "tool_calls": bars("tool_calls", histogram(calls, [0, 1, 2, 3, 5, 8, 100])),
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "html"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    html = env.get_template("report.html.jinja").render(
        manifest=manifest, charts=charts, sample=_sample(rows), json=json, caught=caught(manifest)
    )
    path = store.root / "report.html"
    atomic_write(path, html.encode())
    return path
