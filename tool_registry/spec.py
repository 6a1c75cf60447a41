"""ToolSpec: one tool, losslessly convertible to and from an OpenAI tool object.

``parameters`` is JSON Schema, checked as a schema when the spec is made: valid under Draft
7, plain JSON (no NaN or infinities), of bounded depth, with no ``$ref`` cycle a validator
would loop on (:mod:`tool_registry.schema_checks`). The id is a hash of what the tool *is*
(name, description, parameters), so the same tool imported twice gets the same id.
Provenance says where it came from. Nothing here does I/O.

Example::

    spec = ToolSpec.from_openai({"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
    assert ToolSpec.from_openai(spec.to_openai()) == spec
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from tool_registry.schema_checks import structure_problem

NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
# One validator of the metaschema, built once (check_schema() builds one per call). Draft 7:
# what tool schemas are written in; checking against it took imports from ~700 to ~2,700 tools/s.
_META = jsonschema.Draft7Validator(jsonschema.Draft7Validator.META_SCHEMA)
SourceKind = Literal["mcp", "openai", "function_docs", "synthetic", "python"]


class Provenance(BaseModel):
    """Where a tool came from."""

    model_config = ConfigDict(extra="forbid")

    source: SourceKind
    """How it entered the repository."""
    origin: str = ""
    """The MCP server command, the file, or the domain path it was evolved for."""
    generator_model: str | None = None
    """For synthetic tools: the model that proposed it."""
    prompt_hash: str | None = None
    """For synthetic tools: hash of the prompt that produced it."""


class ToolSpec(BaseModel):
    """A tool an agent can call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    """OpenAI function-name rules: letters, digits, ``_`` and ``-``, at most 64."""
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON Schema of the arguments object."""
    returns: str | None = None
    """What the tool returns, in words."""
    side_effect: Literal["read", "write"] = "read"
    """``write`` tools change the world (send, book, delete); ``read`` ones only look."""
    category: str = ""
    domain: str = ""
    tags: tuple[str, ...] = ()
    strict: bool | None = None
    """OpenAI's ``strict`` flag, kept for a lossless round trip."""
    provenance: Provenance = Field(default_factory=lambda: Provenance(source="openai"))

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = structure_problem(value)  # first: what would make the checks below recurse
        if problem:
            raise ValueError(problem)
        error = jsonschema.exceptions.best_match(_META.iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise ValueError(f"not a valid JSON Schema at {where}: {error.message}")
        if value.get("type", "object") != "object":
            raise ValueError("parameters must describe an object (type: object)")
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """``t-`` + 16 hex of the hash of name, description and parameters."""
        return "t-" + content_hash(self.name, self.description, self.parameters)[:16]

    def to_openai(self) -> dict[str, Any]:
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}

    @classmethod
    def from_openai(cls, tool: dict[str, Any], **fields: Any) -> ToolSpec:
        """From ``{"type": "function", "function": {...}}`` (or the bare function object)."""
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            raise ValueError("a tool is an object with a 'function' object")
        unknown = set(function) - {"name", "description", "parameters", "strict"}
        if unknown:
            raise ValueError(f"unknown function fields: {', '.join(sorted(unknown))}")
        data = {
            k: function[k] for k in ("name", "description", "parameters", "strict") if k in function
        }
        return cls.model_validate({**data, **fields})

    def parameter_count(self) -> int:
        return len(self.parameters.get("properties") or {})


def content_hash(name: str, description: str, parameters: dict[str, Any]) -> str:
    canonical = json.dumps([name, description, parameters], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def schema_hash(parameters: dict[str, Any]) -> str:
    """Hash of the parameters alone: two tools with the same interface."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]
