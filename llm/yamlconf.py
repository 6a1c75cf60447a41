"""Load YAML into pydantic models with errors that name file, line and field.

Every config entry point in Summit (endpoints, synthesis jobs, GRPO runs, rubrics) loads
through :func:`load_yaml_model`, so a user always sees ``path:line: field: message``.
``--set a.b=c`` overrides are applied by :func:`apply_overrides` before validation.
This module knows nothing about what the models mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from llm.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class YamlConfigError(ConfigError):
    """A YAML file failed to parse or validate; ``str()`` is ``file:line: field: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse ``path`` into plain data plus its node tree (for line numbers)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlConfigError([f"{path}{line}: invalid YAML: {problem}"]) from exc
    return data, node


def line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the value at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if found is None:
                key_node = next(
                    (k for k, _ in node.value if getattr(k, "value", None) == key), None
                )
                return key_node.start_mark.line + 1 if key_node is not None else line
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validation_problems(
    exc: ValidationError,
    path: str | Path,
    node: yaml.Node | None,
    prefix: tuple[int | str, ...] = (),
) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        line = line_of(node, loc)
        where = f"{path}:{line}" if line else str(path)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{where}: {format_loc(loc)}: {message}")
    return problems


def load_yaml_model(path: str | Path, model: type[M], overrides: list[str] | None = None) -> M:
    """Load ``path`` as ``model``, applying ``key.path=value`` overrides first."""
    data, node = load_yaml(path)
    if data is None:
        data = {}
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise YamlConfigError(validation_problems(exc, path, node)) from exc


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides; ``value`` is parsed as YAML (``3``, ``true``, ``[1]``)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise YamlConfigError([f"--set {item!r}: expected key.path=value"])
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                target[part] = nxt
            target = nxt
        target[parts[-1]] = yaml.safe_load(raw)
    return data
