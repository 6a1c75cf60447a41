"""Load YAML into pydantic models with errors that name file, line and field.

Every config entry point in Summit (endpoints, synthesis jobs, GRPO runs, rubrics) loads
through :func:`load_yaml_model`, so a user always sees ``path:line: field: message``, on
one line, for every way a file can be wrong: missing, a directory, binary, not YAML,
empty, a list or scalar where a mapping belongs, nested past :data:`MAX_DEPTH`, recursive
or exploding aliases, a bad field. ``--set a.b=c`` overrides are applied by
:func:`apply_overrides` before validation. Fields that name other files use
:data:`InputFile` / :data:`TextFile`; a CLI loads with ``check_files=True`` so those files
are checked with the config, before anything starts. This module knows nothing about what
the models mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails

from llm.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 100
"""Nesting levels a YAML file may have; real configs use fewer than ten. Deeper ones are
refused with their line instead of exhausting Python's recursion limit."""
MAX_NODES = 1_000_000
"""Values a YAML document may expand to through aliases (a "billion laughs" is refused)."""
CHECK_FILES = "check_files"
"""Validation-context key: when true, :data:`InputFile` fields must name existing files."""
_SNIFF = 8192


class YamlConfigError(ConfigError):
    """A config or input file could not be read, parsed or validated; ``str()`` is
    ``file:line: field: message`` (one line per problem)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a file a user named, or a one-line :class:`YamlConfigError` that
    says why not: missing, a directory, not a regular file, unreadable, or binary (with
    the line of the first byte that is not text). A UTF-8 BOM is skipped."""
    path = Path(path)
    raw = read_bytes(path)
    binary = _binary_at(raw)
    if binary is not None:
        raise YamlConfigError([f"{path}:{binary}: not a text file (binary content)"])
    return raw.decode("utf-8-sig")


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file a user named, or a one-line :class:`YamlConfigError` saying why
    not (missing, a directory, not a regular file, unreadable)."""
    path = Path(path)
    problem = _file_problem(path)
    if problem:
        raise YamlConfigError([f"{path}: {problem}"])
    try:
        return path.read_bytes()
    except OSError as exc:
        raise YamlConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc


def _file_problem(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a directory, not a file"
    if not path.is_file():
        return "not a regular file"
    return None


def _binary_at(raw: bytes) -> int | None:
    """The 1-based line of the first NUL byte or invalid UTF-8 in ``raw``; None for text."""
    nul = raw.find(b"\x00")
    try:
        raw.decode("utf-8-sig")
        bad = nul
    except UnicodeDecodeError as exc:
        bad = exc.start if nul < 0 else min(nul, exc.start)
    return None if bad < 0 else raw[:bad].count(b"\n") + 1


def checking_files(info: ValidationInfo) -> bool:
    """Whether this validation should check the files (and programs) a config names."""
    return bool(info.context and info.context.get(CHECK_FILES))


def _input_file(value: Path, info: ValidationInfo) -> Path:
    if checking_files(info):
        problem = _file_problem(value)
        if problem:
            raise ValueError(f"{value}: {problem}")
    return value


def _text_file(value: Path, info: ValidationInfo) -> Path:
    if checking_files(info):
        try:
            with value.open("rb") as handle:
                head = handle.read(_SNIFF)
        except OSError as exc:
            raise ValueError(f"{value}: cannot read: {exc.strerror or exc}") from None
        # a multi-byte character cut at the end of the sniffed block is still text
        line = _binary_at(head if len(head) < _SNIFF else head[:-3])
        if line is not None:
            raise ValueError(f"{value}:{line}: not a text file (binary content)")
    return value


InputFile = Annotated[Path, AfterValidator(_input_file)]
"""A path to a file the run reads; checked to exist (and be a file) under ``check_files``."""
TextFile = Annotated[InputFile, AfterValidator(_text_file)]
"""An :data:`InputFile` that must also be text (JSONL, YAML), not binary."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses, with the line, what would otherwise raise RecursionError or
    build data no config has: nesting past MAX_DEPTH, an alias inside the node it names,
    aliases that expand past MAX_NODES."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._open: list[str | None] = []
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) and event.anchor in self._open:
            raise _refused(f"alias *{event.anchor} is inside the node it names", event)
        if len(self._open) >= MAX_DEPTH:
            raise _refused(f"nested more than {MAX_DEPTH} levels deep", event)
        self._open.append(getattr(event, "anchor", None))
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open.pop()
        if node is not None and id(node) not in self._sizes:
            self._sizes[id(node)] = size = 1 + sum(
                self._sizes.get(id(child), 1) for child in _children(node)
            )
            if size > MAX_NODES:
                raise _refused(f"aliases expand to more than {MAX_NODES} values", event)
        return node


def _refused(problem: str, event: yaml.Event) -> yaml.YAMLError:
    return yaml.composer.ComposerError(None, None, problem, cast(yaml.Mark, event.start_mark))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def load_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse ``path`` into plain data plus its node tree (for line numbers)."""
    text = read_text(path)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        line, problem = _yaml_problem(exc, text)
        where = f"{path}:{line}" if line else str(path)
        raise YamlConfigError([f"{where}: {problem}"]) from exc
    return data, node


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """The 1-based line (when known) and a one-line description of a PyYAML error."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return line, f"invalid YAML: character #x{exc.character:04x} is not allowed"
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return (mark.line + 1 if mark else None), f"invalid YAML: {' '.join(str(problem).split())}"


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


def first_problem(exc: ValidationError, top: str) -> str:
    """``field.path: message`` of ``exc``'s first error; ``top`` names the field when the
    error is about the whole value (``(row)``, ``(manifest)``)."""
    problem = exc.errors()[0]
    field = ".".join(str(p) for p in problem["loc"]) or top
    return f"{field}: {problem['msg']}"


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
        problems.append(f"{where}: {format_loc(loc)}: {error_message(err)}")
    return problems


def error_message(err: ErrorDetails) -> str:
    """One pydantic error as one line: ``unknown field`` for an extra key, a validator's
    own words without pydantic's ``Value error,`` prefix."""
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] in ("value_error", "assertion_error") and "error" in err.get("ctx", {}):
        message = str(err["ctx"]["error"])
    return " ".join(message.split())


def load_yaml_model(
    path: str | Path,
    model: type[M],
    overrides: list[str] | None = None,
    *,
    check_files: bool = False,
) -> M:
    """Load ``path`` as ``model``, applying ``key.path=value`` overrides first.

    With ``check_files`` (what CLIs pass) the files a config names (:data:`InputFile`
    fields) must exist now, so a typo fails here rather than after models or clusters
    started; without it a config can be checked on a machine that lacks its data.
    """
    data, node = load_yaml(path)
    require_mapping(data, node, path, f"{model.__name__} fields")
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return model.model_validate(data, context={CHECK_FILES: check_files})
    except ValidationError as exc:
        raise YamlConfigError(validation_problems(exc, path, node)) from exc


def require_mapping(data: Any, node: yaml.Node | None, path: str | Path, what: str) -> None:
    """Raise a one-line :class:`YamlConfigError` unless the file's data is a mapping (an
    empty file, a list or a single value is not a config)."""
    if isinstance(data, dict):
        return
    if data is None:
        got = "the file is empty"
    else:
        got = "got a list" if isinstance(data, list) else f"got a {type(data).__name__}"
    where = f"{path}:{node.start_mark.line + 1}" if node is not None else str(path)
    raise YamlConfigError([f"{where}: (top level): {got}; expected a mapping of {what}"])


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
        try:
            target[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = _yaml_problem(exc, raw)[1]
            raise YamlConfigError([f"--set {item!r}: {problem}"]) from exc
    return data
