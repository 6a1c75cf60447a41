"""The synthesis prompts (``synth/prompts/*.jinja``), rendered in one place."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

HERE = Path(__file__).resolve().parent


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "prompts"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


def render(name: str, **context: Any) -> str:
    """Render ``prompts/<name>.jinja``; a missing variable is an error, not a blank."""
    return _environment().get_template(f"{name}.jinja").render(**context).strip()


@cache
def personas() -> dict[str, list[str]]:
    """``{"agents": [...], "users": [...]}`` from ``data/personas.yaml``."""
    data = yaml.safe_load((HERE / "data" / "personas.yaml").read_text(encoding="utf-8"))
    return {"agents": list(data["agents"]), "users": list(data["users"])}
