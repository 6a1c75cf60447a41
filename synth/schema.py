"""The dataset contract: what the synthesis pipeline writes and what ``rl`` and SFT read.

These pydantic models are the only part of ``synth`` that other packages may import (the
dependency rule lets ``rl`` read tasks from here, never the Ray pipeline). Records are
stored as rows of parquet shards; nested structures that vary from row to row (messages,
tool schemas, states) are JSON-encoded strings in the row and decoded by these models, so
every shard has the same flat columns — except ``messages`` and ``tools``, which the
accepted split keeps as native lists in OpenAI format because TRL's SFTTrainer reads
them directly.

Ids are content hashes of what defines the item and the run seed, so a resubmitted run
derives exactly the same ids and can skip what is already written.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rubrics import Rubric
from tool_registry import ToolSpec

EnvironmentKind = Literal["simulated", "executable", "mcp", "docker"]
Difficulty = Literal["single", "multi_step", "clarify"]
Outcome = Literal["accepted", "rejected"]
TaskSource = Literal[
    "generated", "template", "blueprint", "real_set", "generated_problem", "mutation"
]
"""Where a task came from: written by the generator and checked by the judge only
(``generated``), a hand-written template (``template``), a generated blueprint whose
ground-truth calls were replayed (``blueprint``), a problem of a real problem set
(``real_set``), a generated problem validated in the sandbox (``generated_problem``), or a
bug injected into a real project (``mutation``)."""


def stable_id(prefix: str, *parts: Any) -> str:
    """``prefix-<12 hex>`` from the JSON of ``parts``: the same inputs give the same id."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return f"{prefix}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


class AgentSpec(BaseModel):
    """An agent: a system prompt, a persona and a coherent subset of tools."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    domain: str
    """The domain its tools come from (a tool-repository category or a tool set name)."""
    environment: EnvironmentKind
    """Where its tool calls land."""
    system_prompt: str
    persona: str
    """Who the agent is, in one line (style and role)."""
    tools: list[ToolSpec]
    toolset: str | None = None
    """For executable environments: the tool set's name (``sandboxes.toolsets.TOOLSETS``)."""
    mcp_command: list[str] | None = None
    """For MCP environments: the server command line."""

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.to_openai() for t in self.tools]

    @field_validator("tools", mode="before")
    @classmethod
    def _drop_derived_ids(cls, tools: Any) -> Any:
        """A ToolSpec's ``id`` is derived from its content: dumped, but not read back."""
        if isinstance(tools, list):
            return [
                {k: v for k, v in t.items() if k != "id"} if isinstance(t, dict) else t
                for t in tools
            ]
        return tools


class RepoCheck(BaseModel):
    """A bug injected into a real project (:mod:`synth.mutations`): the episode starts from
    the mutated file in the project's container (:mod:`sandboxes.swe`), and the reward is 1
    when the tests it broke pass again and no test that passed on the original fails."""

    model_config = ConfigDict(extra="forbid")

    project: str
    """The project's name in the SWE image (``tinyproj``, ``more-itertools``)."""
    path: str
    """The mutated file, relative to the project's root (``tinyproj/stats.py``)."""
    mutated_source: str
    """The whole mutated file, as the episode starts with it."""
    failing_tests: list[str]
    """The unittest ids the mutation broke (``tests.test_stats.MeanTest.test_mean``)."""
    test_command: str
    """The command that runs the project's tests from its root."""


class Checks(BaseModel):
    """What can be verified without an LLM; when present it overrides the judge."""

    model_config = ConfigDict(extra="forbid")

    expected_state: dict[str, Any] | None = None
    """Keys that must hold in the environment's final state (``sandboxes.state_differences``)."""
    tests: str | None = None
    """Python tests (asserts or a ``check(candidate)`` function) for a code answer."""
    entry_point: str | None = None
    """The function the tests call, for code tasks."""
    actions: list[dict[str, Any]] | None = None
    """The ground-truth calls (``{"tool", "arguments"}``) whose replay gave
    ``expected_state``, for tasks made from a blueprint (:mod:`synth.blueprints`)."""
    repo: RepoCheck | None = None
    """The injected bug and the tests it broke, for repository tasks (:mod:`synth.mutations`)."""


class TaskSpec(BaseModel):
    """One task for one agent: the user's goal, its rubric and where it runs."""

    model_config = ConfigDict(extra="forbid")

    id: str
    agent_id: str
    domain: str
    difficulty: Difficulty
    environment: EnvironmentKind
    user_goal: str
    """What the simulated user wants, in their words."""
    user_persona: str = "a busy professional who writes short messages"
    hidden_info: dict[str, str] = Field(default_factory=dict)
    """Facts the user knows but reveals only when the agent asks for them."""
    initial_state: dict[str, Any] = Field(default_factory=dict)
    rubric: Rubric
    """The task rubric (kind ``task``): success criteria, expected tool use, checkpoints."""
    expected_tools: list[str] = Field(default_factory=list)
    checks: Checks = Field(default_factory=Checks)
    source: TaskSource = "generated"
    origin: str | None = None
    """What the task was made from, where that is named: a problem's id in its set
    (``humaneval:HumanEval/12``), a project and mutation (``tinyproj:stats.mean:flip``)."""
    eval_set: bool = False
    """The task comes from an evaluation set (HumanEval, ...): decontamination removes it
    when that set is named, and a user may exclude such tasks from training."""

    def prompt(self) -> str:
        """The task as one prompt string (RL prompt datasets, the judge's prompt)."""
        return self.user_goal


class Trajectory(BaseModel):
    """One roll-out: every message and tool result, the final state, usage per role."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    agent_id: str
    messages: list[dict[str, Any]]
    """OpenAI chat messages, system prompt first, tool calls and tool results included."""
    tools: list[dict[str, Any]]
    """OpenAI tool definitions the agent was given."""
    final_state: dict[str, Any] = Field(default_factory=dict)
    turns: int = 0
    """User turns."""
    tool_calls: int = 0
    tool_errors: int = 0
    stop_reason: str = ""
    """``user_satisfied``, ``user_stuck``, ``max_turns``, ``max_tool_calls`` or ``error: ...``."""
    length_stops: list[int] = Field(default_factory=list)
    """Indices in ``messages`` of the agent replies that stopped at the token limit
    (``finish_reason == "length"``): cut off mid-answer, wherever the text ended."""
    usage: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per role (agent, user, tool_simulator, judge): tokens and cost."""


class Record(BaseModel):
    """A finished task: accepted or rejected with a reason. One row of the dataset."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    agent_id: str
    domain: str
    environment: EnvironmentKind
    difficulty: Difficulty
    outcome: Outcome
    reason: str = ""
    """Why it was rejected (``judge_failed``, ``state_mismatch``, ``tests_failed``,
    ``rollout_error``, ``judge_error``, or one of the degenerate-text reasons of
    ``synth.judging.DEGENERATE``); empty when accepted."""
    detail: str = ""
    score: float | None = None
    """The judge's overall score (0..1); None when the judge did not run."""
    verified: bool | None = None
    """Result of the verifiable check, where the task has one."""
    verdict: dict[str, Any] | None = None
    trajectory: Trajectory | None = None
    usage: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Tokens and cost per role spent while this record was made (agent, user,
    tool_simulator, judge); summed over the dataset they give the run's usage."""
    trial_id: str | None = None
    """Which play of the task this is when a task is played several times (rejection
    sampling, pass^k evaluation: ``rl.trials``); it is then the row's ``id``. None in
    the synthesis, which plays each task once: the row's ``id`` is the task id."""

    def to_row(self) -> dict[str, Any]:
        """The parquet row: OpenAI ``messages``/``tools`` columns plus flat metadata."""
        t = self.trajectory
        return {
            "id": self.trial_id or self.task_id,
            "agent_id": self.agent_id,
            "domain": self.domain,
            "environment": self.environment,
            "difficulty": self.difficulty,
            "outcome": self.outcome,
            "reason": self.reason,
            "detail": self.detail,
            "score": self.score,
            "verified": self.verified,
            "messages": [_wire(m) for m in t.messages] if t else [],
            "tools": json.dumps(t.tools if t else []),
            "verdict": json.dumps(self.verdict) if self.verdict is not None else None,
            "usage": json.dumps(self.usage),
            "trajectory_meta": json.dumps(
                t.model_dump(exclude={"messages", "tools"}) if t else None
            ),
        }


class RLPromptRow(BaseModel):
    """One row of ``rl_prompts.parquet``: a task as RL plays it (``rl``'s tool-use gym
    validates each row it reads with this model). ``task`` and ``tools`` are JSON strings,
    so every row has the same flat columns."""

    model_config = ConfigDict(extra="forbid")

    id: str
    agent_id: str
    prompt: list[dict[str, Any]]
    """The agent's system prompt and the user's first message (OpenAI messages)."""
    task: str
    """The :class:`TaskSpec` as JSON."""
    tools: str
    """The agent's tools in OpenAI format, as JSON."""
    environment: EnvironmentKind
    toolset: str | None = None
    """The executable tool set an ``executable`` task plays in."""

    @classmethod
    def of(cls, agent: AgentSpec, task: TaskSpec) -> RLPromptRow:
        return cls(
            id=task.id,
            agent_id=agent.id,
            prompt=[
                {"role": "system", "content": agent.system_prompt},
                {"role": "user", "content": task.user_goal},
            ],
            task=task.model_dump_json(),
            tools=json.dumps(agent.openai_tools()),
            environment=task.environment,
            toolset=agent.toolset,
        )


class ManifestCounts(BaseModel):
    """How many of each thing a synthesis run made (``manifest.json``'s ``counts``)."""

    model_config = ConfigDict(extra="forbid")

    tools: int
    agents: int
    agents_with_templated_prompt: int
    task_generation_failed: int
    tasks_degenerate: int
    tasks: int
    trajectories: int
    accepted: int
    rejected: int


class BlueprintCounts(BaseModel):
    """What became of the blueprints a run's generator wrote (``synth.blueprints``):
    ``tried == kept + sum(rejected_by_reason)``."""

    model_config = ConfigDict(extra="forbid")

    tried: int = 0
    kept: int = 0
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def plus(self, other: BlueprintCounts) -> BlueprintCounts:
        """Both counts together (one agent's added to a run's), reasons most common first."""
        rejected = Counter(self.rejected_by_reason) + Counter(other.rejected_by_reason)
        return BlueprintCounts(
            tried=self.tried + other.tried,
            kept=self.kept + other.kept,
            rejected_by_reason=dict(rejected.most_common()),
        )


class ProblemCounts(BaseModel):
    """The coding problems Docker tasks were drawn from: a real set's, and generated ones
    (``tried == kept + sum(rejected_by_reason)``)."""

    model_config = ConfigDict(extra="forbid")

    real: int = 0
    generated_tried: int = 0
    generated_kept: int = 0
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)


class RepositoryCounts(BaseModel):
    """One project's mutation tasks (``synth.swe_tasks``): ``tried == kept +
    sum(dropped_by_reason)``; ``error`` when the project could not be used at all."""

    model_config = ConfigDict(extra="forbid")

    tried: int = 0
    kept: int = 0
    dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    error: str | None = None


class Decontaminated(BaseModel):
    """A task removed before it was played: it overlaps an evaluation set's item."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    source: str
    """The evaluation set (``humaneval``, a file's path)."""
    item: str
    """The item it overlaps, by its id in that set."""
    reason: str


NEAR_DUP_THRESHOLD = 0.9
"""Cosine similarity from which two texts count as near duplicates."""


class Diversity(BaseModel):
    """Diversity figures of one group of tasks, and of their trajectories where played
    (:mod:`synth.diversity`)."""

    model_config = ConfigDict(extra="forbid")

    tasks: int
    near_dup_rate_tasks: float
    call_patterns_per_100: float
    tool_coverage: float
    goal_words_mean: float
    trajectories: int = 0
    near_dup_rate_trajectories: float | None = None
    trajectory_messages_mean: float | None = None
    trajectory_tool_calls_mean: float | None = None


class DiversityReport(BaseModel):
    """Diversity per environment kind and per task source (``manifest.json``)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = NEAR_DUP_THRESHOLD
    """Cosine similarity from which two texts count as near duplicates."""
    by_environment: dict[str, Diversity] = Field(default_factory=dict)
    by_source: dict[str, Diversity] = Field(default_factory=dict)


class Manifest(BaseModel):
    """``manifest.json`` of a synthesis run: what it made, with which models, and whether
    the dataset reconciles with the tasks (one record per task, no duplicates)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    config_hash: str
    code_version: str
    written_at: str
    models: dict[str, dict[str, str]]
    """Per role: the endpoint's name and model."""
    counts: ManifestCounts
    rejected_by_reason: dict[str, int]
    by_environment: dict[str, dict[str, int]]
    """Per environment kind: records per outcome."""
    by_domain: dict[str, dict[str, int]]
    tasks_by_source: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Per environment kind: tasks per source (``TaskSpec.source``)."""
    blueprints: BlueprintCounts = Field(default_factory=BlueprintCounts)
    problems: ProblemCounts = Field(default_factory=ProblemCounts)
    repositories: dict[str, RepositoryCounts] = Field(default_factory=dict)
    """Per project of ``tasks.repositories``: mutants tried, kept and dropped by reason."""
    decontaminated: list[Decontaminated] = Field(default_factory=list)
    """Tasks removed for overlapping an evaluation set (not counted in ``tasks``)."""
    eval_set_tasks: int = 0
    """Tasks made from an evaluation set's problems (``TaskSpec.eval_set``) that were kept."""
    diversity: DiversityReport = Field(default_factory=DiversityReport)
    usage: dict[str, dict[str, int | float]]
    """Per role: tokens and cost spent."""
    duplicates: int
    reconciled: bool


def _wire(message: dict[str, Any]) -> dict[str, Any]:
    """Fixed keys in every message so parquet infers one struct type for the column."""
    calls = message.get("tool_calls") or []
    return {
        "role": message.get("role", ""),
        "content": message.get("content") if isinstance(message.get("content"), str) else "",
        "tool_calls": [
            {
                "id": c.get("id", ""),
                "type": "function",
                "function": {
                    "name": c["function"]["name"],
                    "arguments": c["function"].get("arguments", "{}"),
                },
            }
            for c in calls
        ]
        or None,
        "tool_call_id": message.get("tool_call_id"),
    }
