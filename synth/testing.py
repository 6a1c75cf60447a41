"""A scripted world for testing and benchmarking the pipeline without a model.

:class:`ScriptedWorld` is a responder for :class:`llm.testing.ScriptedEndpoint` that
plays every role by reading the request: structured-output requests get the smallest
valid instance of their JSON schema (judge scores at the top or the bottom of the scale,
as configured), users are satisfied after the first answer, and the agent calls its first
tool with schema-valid arguments, then answers in text — or, for a coding task it has a
solution for, answers with that code. It is deterministic: the same request gets the same
reply. It proves plumbing and bookkeeping, never quality.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any

from llm.testing import Reply, call


def instance(schema: dict[str, Any], defs: dict[str, Any], high: bool = True) -> Any:
    """The smallest value valid for ``schema`` (integers at their max when ``high``)."""
    if "$ref" in schema:
        return instance(defs[schema["$ref"].split("/")[-1]], defs, high)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance(options[0], defs, high)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: instance(props[k], defs, high) for k in schema.get("required", list(props))}
    if kind == "array":
        return [instance(schema.get("items", {}), defs, high)] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        low, top = schema.get("minimum", 0), schema.get("maximum", 1)
        return top if high else low
    if kind == "boolean":
        return True
    return (
        "x" * max(1, schema.get("minLength", 1))
        if schema.get("minLength", 0) > 20
        else ("scripted text")
    )


class ScriptedWorld:
    """Responder: ``ScriptedEndpoint(ScriptedWorld(...))``. ``roles`` counts requests."""

    def __init__(self, *, judge_pass: bool = True, solutions: dict[str, str] | None = None) -> None:
        self.judge_pass = judge_pass
        self.solutions = solutions or {}
        self.roles: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Reply:
        fmt = (request.get("response_format") or {}).get("json_schema")
        if fmt:
            role, reply = self._structured(fmt["name"], fmt["schema"])
        elif request.get("tools"):
            role, reply = "agent", self._agent(request)
        else:
            role, reply = "other", Reply(content="ok")
        with self._lock:
            self.roles[role] += 1
        return reply

    def _structured(self, name: str, schema: dict[str, Any]) -> tuple[str, Reply]:
        defs = schema.get("$defs", {})
        if name == "UserTurn":
            value: Any = {"message": "Thanks, that is all.", "status": "satisfied"}
        elif name == "SimulatedAnswer":
            value = {"result": {"status": "ok", "items": [1, 2]}, "state_update": {"calls": 1}}
        elif name == "AgentDraft":
            value = {"name": "Scripted helper", "system_prompt": "You help users with tools. " * 3}
        elif name == "GeneratedTask":
            value = {
                "user_goal": "Please look up my order status.",
                "hidden_info": {"order id": "A-1"},
                "success_criteria": ["the agent reports the status"],
                "expected_tools": [],
                "initial_state": {"orders": {"A-1": "shipped"}},
            }
        else:
            value = instance(schema, defs, high=self.judge_pass)
        if name == "JudgeAnswer":  # reasons that name their criterion, as a sound judge's do
            verdict = "holds" if self.judge_pass else "fails"
            value["reasoning"] = f"Scripted judgment: every criterion {verdict}."
            for key, entry in value["scores"].items():
                entry["reasoning"] = f"{key} {verdict}"
        role = {
            "UserTurn": "user",
            "SimulatedAnswer": "tool_simulator",
            "JudgeAnswer": "judge",
        }.get(name, "generator")
        return role, Reply(content=json.dumps(value))

    def _agent(self, request: dict[str, Any]) -> Reply:
        messages = request["messages"]
        last = messages[-1]
        if last.get("role") == "tool":
            return Reply(content=f"Done. The tool said: {str(last.get('content'))[:80]}")
        goal = next((m["content"] for m in messages if m.get("role") == "user"), "")
        for entry, code in self.solutions.items():
            if re.search(rf"\b{re.escape(entry)}\b", str(goal)):
                return Reply(content=f"Here it is:\n```python\n{code}\n```")
        tool = request["tools"][0]["function"]
        arguments = instance(tool.get("parameters") or {"type": "object"}, {})
        return Reply(tool_calls=[call(tool["name"], arguments, f"call_{len(messages)}")])
