"""The JSON schemas the synthesis decodes under are grammars the embedded engine can
compile, and each one bounds what a model writes: a small model under an unbounded string
keeps writing until its token budget runs out (a task generation that ran to its 700-token
limit held a whole batch in the demo)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from rubrics.critic import pair_answer_model
from rubrics.judge import answer_model, keyed
from rubrics.loader import RubricSet
from synth.agents import AgentDraft
from synth.blueprints import Agreement, Blueprint, StatefulBlueprint
from synth.problems import GeneratedProblem
from synth.tasks import GeneratedTask, task_rubric
from synth.user import UserTurn
from synth.verifiable import TaskDraft


def _judge_model() -> type[BaseModel]:
    draft = TaskDraft(user_goal="Book a table for two.", success_criteria=["a table is booked"])
    rubric = task_rubric("task-0", draft)
    return answer_model(keyed([rubric.id], RubricSet({rubric.id: rubric})), 300)


BOUNDED = {
    "AgentDraft": lambda: AgentDraft,
    "GeneratedTask": lambda: GeneratedTask,
    "GeneratedProblem": lambda: GeneratedProblem,
    "UserTurn": lambda: UserTurn,
    "JudgeAnswer": _judge_model,
    "PairAnswer": lambda: pair_answer_model(300),
    "Blueprint": lambda: Blueprint,
    "StatefulBlueprint": lambda: StatefulBlueprint,
    "Agreement": lambda: Agreement,
}


def unbounded(schema: dict[str, Any]) -> list[str]:
    """Paths in ``schema`` where a decoder may write without end: a free string, an array
    without ``maxItems``, an open object without ``maxProperties``."""
    defs = schema.get("$defs", {})
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            walk(defs[node["$ref"].rsplit("/", 1)[-1]], path)
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for index, option in enumerate(node.get(key, [])):
                walk(option, f"{path}|{index}")
        kind = node.get("type")
        if kind == "string" and "maxLength" not in node and "enum" not in node:
            found.append(f"{path}: string without maxLength")
        if kind == "array":
            if "maxItems" not in node:
                found.append(f"{path}: array without maxItems")
            walk(node.get("items"), f"{path}[]")
        if kind == "object":
            extra = node.get("additionalProperties", True)
            if extra is not False and "maxProperties" not in node:
                found.append(f"{path}: open object without maxProperties")
            if isinstance(extra, dict):
                walk(extra, f"{path}.*")
            for name, child in node.get("properties", {}).items():
                walk(child, f"{path}.{name}")
        if "type" not in node and not any(k in node for k in ("anyOf", "oneOf", "allOf", "enum")):
            found.append(f"{path}: any value")

    walk(schema, "$")
    return found


def test_the_walk_finds_what_is_unbounded() -> None:
    class Loose(BaseModel):
        text: str
        items: list[int]
        facts: dict[str, str]
        anything: Any = None

    assert set(unbounded(Loose.model_json_schema())) == {
        "$.anything: any value",
        "$.facts: open object without maxProperties",
        "$.facts.*: string without maxLength",
        "$.items: array without maxItems",
        "$.text: string without maxLength",
        "$: open object without maxProperties",
    }


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_every_value_a_model_writes_is_bounded(name: str) -> None:
    assert unbounded(BOUNDED[name]().model_json_schema()) == []


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_the_engine_compiles_the_schema(name: str) -> None:
    import llguidance
    import llguidance.hf

    from llm.embedded.model import load_tokenizer

    schema = json.dumps(BOUNDED[name]().model_json_schema())
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        schema, defaults={"whitespace_flexible": False}
    )
    matcher = llguidance.LLMatcher(llguidance.hf.from_tokenizer(load_tokenizer()), grammar)
    assert not matcher.is_error(), matcher.get_error()


def test_a_generated_task_over_its_bounds_is_refused() -> None:
    good = {"user_goal": "Find the cheapest flight to Oslo.", "success_criteria": ["a fare"]}
    assert GeneratedTask.model_validate(good).user_goal.startswith("Find")
    for field, value in (
        ("success_criteria", ["x" * 161]),
        ("hidden_info", {f"k{i}": "v" for i in range(5)}),
        ("initial_state", {"nested": {"a": {"b": 1}}}),
        ("initial_state", {f"k{i}": 1 for i in range(7)}),
        ("expected_tools", ["t" * 65]),
    ):
        with pytest.raises(ValidationError, match=field):
            GeneratedTask.model_validate({**good, field: value})
