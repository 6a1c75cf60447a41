"""The tool-use gym: synthesized (or hand-written) tasks played in executable environments.

Tasks come from the synthesis pipeline's ``rl_prompts.parquet`` (columns ``prompt``,
``task`` — a TaskSpec as JSON —, ``tools``, ``environment``, ``toolset``) or from a JSONL
file whose rows are TaskSpec objects with a ``toolset`` field beside them (and optionally a
``system_prompt``). Only executable tasks whose tool set is known
(``sandboxes.toolsets.TOOLSETS``) can be played; others are skipped with a warning.

Each task's row routes TRL's ``environment_factory`` to its tool set
(:mod:`rl.environments`), one environment instance per roll-out. The verifier reads the
environment after the roll-out: with an expected final state (``checks.expected_state``),
reward 1 when the state matches it (``sandboxes.executable.state_matches``), else 0;
without one, the rubrics judge scores the trajectory (prompt, tool calls, results and the
final answer) against the task's own rubric plus ``trajectory`` — ``None`` if the judge fails.
An expected state that the task's initial state already meets (a read-only task) checks
nothing — doing nothing would pass it — so such a task is judged like one without. A
roll-out whose final answer is empty or degenerate scores 0 in the gate
(:mod:`rl.gyms.base`) whatever the state: the agent is asked to say what it did.

Not here: the user simulator (RL roll-outs are single-goal: the user's goal is the prompt).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from llm.yamlconf import InputFile
from rl.gyms.base import (
    Gym,
    GymError,
    GymOptions,
    Sample,
    Split,
    Task,
    json_lines,
    register,
    split_items,
)
from sandboxes.executable import state_matches
from sandboxes.toolsets import TOOLSETS
from synth.schema import TaskSpec

if TYPE_CHECKING:
    from rubrics import RubricSet

log = logging.getLogger(__name__)
SYSTEM = (
    "You are a careful assistant. Use the tools to do what the user asks, then say what you did."
)


class ToolTask(BaseModel):
    """One playable task: its prompt, its TaskSpec and the tool set it runs in."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[dict[str, Any]]
    task: TaskSpec
    toolset: str


class ToolUseOptions(GymOptions):
    path: InputFile
    """``rl_prompts.parquet`` from ``python -m synth run``, or a ``.jsonl`` of TaskSpec rows
    each with a ``toolset`` field (and optionally ``system_prompt``)."""
    judge_rubrics: list[str] = Field(default_factory=lambda: ["trajectory"])
    """Rubrics added to the task's own rubric when there is no expected state: built-in
    ids or ids from ``judge_rubric_files``."""
    judge_rubric_files: list[str] = Field(default_factory=list)
    """Your own rubric YAML files or folders, loaded beside the built-in library."""

    _rubric_set: RubricSet | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load_rubrics(self) -> ToolUseOptions:
        from rubrics.loader import require

        self._rubric_set = require(self.judge_rubrics, self.judge_rubric_files)
        return self

    def rubric_set(self) -> RubricSet:
        """The library plus ``judge_rubric_files``, as read when the options were loaded."""
        assert self._rubric_set is not None  # set by the validator
        return self._rubric_set


@register
class ToolUseGym(Gym):
    name = "tool_use"
    Options = ToolUseOptions
    options: ToolUseOptions

    def load(self, split: Split) -> list[Task]:
        tasks = split_items(read_tasks(self.options.path), split, self.options)
        return [
            Task(
                prompt=t.prompt,
                payload={"task": t.task.model_dump(mode="json"), "toolset": t.toolset},
                environment=t.toolset,
            )
            for t in tasks
        ]

    def verify_batch(self, samples: list[Sample]) -> list[float | None]:
        scores: list[float | None] = [None] * len(samples)
        judged: list[int] = []
        for index, sample in enumerate(samples):
            task = sample.payload.get("task") or {}
            expected = (task.get("checks") or {}).get("expected_state")
            state = getattr(sample.environment, "state", None)
            if state is None:
                continue  # no environment was played: nothing to verify
            if expected is not None and state_matches(task.get("initial_state") or {}, expected):
                scores[index] = 0.0 if state_matches(state, expected) else 1.0
            else:  # no expected state, or one that doing nothing already meets
                judged.append(index)
        if judged:
            verdicts = asyncio.run(self._judge([samples[i] for i in judged]))
            for index, verdict in zip(judged, verdicts, strict=True):
                scores[index] = verdict
        return scores

    async def _judge(self, samples: list[Sample]) -> list[float | None]:
        from llm import ChatClient
        from rubrics import JudgeError, RubricSet, judge

        async def one(sample: Sample, client: ChatClient) -> float | None:
            spec = TaskSpec.model_validate(sample.payload["task"])
            base = self.options.rubric_set()
            rubrics = RubricSet({**base.rubrics, spec.rubric.id: spec.rubric})
            trajectory = sample.prompt + sample.completion
            ids = [spec.rubric.id, *self.options.judge_rubrics]
            try:
                verdict = await judge(spec.user_goal, trajectory, ids, client, rubric_set=rubrics)
            except JudgeError:
                return None
            return verdict.overall

        async with ChatClient(self.resources.get("judge")) as client:
            return list(await asyncio.gather(*(one(s, client) for s in samples)))


def read_tasks(path: str | Path) -> list[ToolTask]:
    """Playable tasks from parquet or JSONL; unplayable ones are skipped with a warning."""
    path = Path(path)
    if not path.exists():
        raise GymError(f"{path}: no such file")
    rows = _parquet_rows(path) if path.suffix == ".parquet" else json_lines(path)
    tasks, skipped = [], 0
    for where, row in rows:
        task = _task(where, row)
        if task is None:
            skipped += 1
        else:
            tasks.append(task)
    if skipped:
        log.warning("%s: skipped %d tasks that are not executable tool-set tasks", path, skipped)
    if not tasks:
        raise GymError(f"{path}: no executable tasks with a known tool set ({', '.join(TOOLSETS)})")
    return tasks


def _parquet_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    return [(f"{path}: row {i}", r) for i, r in enumerate(rows)]


def _task(where: str, row: dict[str, Any]) -> ToolTask | None:
    row = dict(row)
    toolset = row.pop("toolset", None)
    system = row.pop("system_prompt", None)
    raw = row.get("task", row) if "task" in row else row
    try:
        spec = (
            TaskSpec.model_validate_json(raw)
            if isinstance(raw, str)
            else TaskSpec.model_validate(raw)
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "(task)"
        raise GymError(f"{where}: task.{field}: {problem['msg']}") from exc
    if spec.environment != "executable" or not toolset:
        return None
    if toolset not in TOOLSETS:
        raise GymError(
            f"{where}: toolset: unknown tool set {toolset!r}; known: {', '.join(TOOLSETS)}"
        )
    prompt = row.get("prompt") if isinstance(row.get("prompt"), list) else None
    if prompt is None:
        prompt = [
            {"role": "system", "content": system or SYSTEM},
            {"role": "user", "content": spec.user_goal},
        ]
    return ToolTask(prompt=[_clean(m) for m in prompt], task=spec, toolset=toolset)


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    """Parquet gives every message every key; keep role and content."""
    return {"role": message["role"], "content": message.get("content") or ""}
