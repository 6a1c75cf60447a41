"""The config blocks of every command that plays synthesis tasks ``n`` times with a policy.

``python -m rl sample`` (:class:`rl.sample_config.SampleConfig`) and the ``agentic_eval``
block of ``python -m rl eval`` (:class:`AgenticEvalConfig`) share :class:`TrialsConfig`:
where the tasks come from, which split, how many trials per task, who plays the user,
the tool simulator and the judge, and the roll-out's limits — the synthesis' own blocks
(``synth.config``) where one exists, so a field means the same in both places. What the
fields do is :mod:`rl.trials`' business; this module only validates them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from llm.endpoints import check_preset
from llm.yamlconf import TextFile, checking_files
from synth.config import JudgeConfig, RoleEndpoint, RolloutConfig

Split = Literal["train", "heldout", "all"]
STRICT = ConfigDict(extra="forbid")


class TaskSource(BaseModel):
    """One place tasks come from: a synthesis run, two JSONL files, or an MCP domain."""

    model_config = STRICT
    run: Path | None = None
    """A ``python -m synth run`` output directory: its ``agents.jsonl`` and ``tasks.jsonl``
    (and the MCP servers of its ``config.yaml``)."""
    tasks: TextFile | None = None
    """A JSONL file of ``TaskSpec`` rows (``synth.schema``); needs ``agents``."""
    agents: TextFile | None = None
    """A JSONL file of ``AgentSpec`` rows: the agents that ``tasks`` rows name."""
    domain: str | None = None
    """An external MCP domain (a server command plus tasks with expected outcomes), by
    name or path, as ``rl.domains.load_domain`` resolves it."""

    @model_validator(mode="after")
    def _one_kind(self, info: ValidationInfo) -> TaskSource:
        given = [name for name in ("run", "tasks", "domain") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of run, tasks (with agents) or domain")
        if (self.tasks is None) != (self.agents is None):
            raise ValueError("tasks and agents go together: the tasks name their agents")
        if self.run is not None and checking_files(info):
            for name in ("agents.jsonl", "tasks.jsonl"):
                if not (self.run / name).is_file():
                    raise ValueError(f"{self.run}: not a synthesis run directory (no {name})")
        return self


class TrialEndpoints(BaseModel):
    """Who plays the roles around the policy (the same preset may serve several)."""

    model_config = STRICT
    user: RoleEndpoint = Field(default_factory=RoleEndpoint)
    """The simulated user."""
    tool_simulator: RoleEndpoint = Field(default_factory=RoleEndpoint)
    """Plays the tools of ``simulated`` tasks."""
    judge: RoleEndpoint = Field(default_factory=RoleEndpoint)
    """Judges tasks without a verifiable check against their rubrics."""

    @model_validator(mode="after")
    def _presets_exist(self, info: ValidationInfo) -> TrialEndpoints:
        if checking_files(info):
            for role in (self.user, self.tool_simulator, self.judge):
                check_preset(role.preset)
        return self


class TrialsConfig(BaseModel):
    """Tasks played ``samples`` times each by a policy, through the synthesis' roll-out."""

    model_config = STRICT
    tasks: list[TaskSource] = Field(min_length=1)
    """Task sources; their tasks are pooled (a task id may appear only once)."""
    split: Split = "train"
    """Which tasks to play: ``train``, ``heldout`` (never trained on) or ``all``."""
    heldout_fraction: float = Field(0.2, ge=0, le=1)
    """Share of tasks held out, chosen by a hash of the task id (``rl.trials.split_of``):
    the same task is in the same split in every command that uses the same fraction."""
    samples: int = Field(4, ge=1)
    """Trials per task, each with its own seed."""
    temperature: float | None = Field(None, ge=0)
    """The policy's sampling temperature; default: its endpoint's (0.7 when embedded)."""
    endpoints: TrialEndpoints = Field(default_factory=TrialEndpoints)
    limits: RolloutConfig = Field(default_factory=RolloutConfig)
    """Turns, tool calls and tokens per trial (as the synthesis' ``rollout`` block)."""
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    """How tasks without a verifiable check are judged (as the synthesis' ``judge`` block)."""
    concurrency: int = Field(4, ge=1)
    """Trials in flight at once."""
    sandbox_pool: int = Field(2, ge=1)
    """Warm Docker containers for ``docker`` tasks."""

    _unhashed: ClassVar[set[str]] = {"concurrency", "sandbox_pool"}

    def trials_hash(self) -> str:
        """Hash of what decides the trials a directory holds and how they end (not how
        fast they are played): a directory is bound to it."""
        data = self.model_dump(mode="json", exclude=self._unhashed)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class AgenticEvalConfig(TrialsConfig):
    """``python -m rl eval``'s agentic part: pass@k and pass^k on held-out tasks."""

    split: Split = "heldout"
    ks: list[int] = Field(default_factory=lambda: [1, 2, 4], min_length=1)
    """The k of pass@k and pass^k in the table and JSON (each at most ``samples``); the
    plot draws pass^k for every k up to ``samples``."""
    trials_dir: Path | None = None
    """Where the trials are kept (resumable); default
    ``<output_dir>/agentic_eval/<checkpoint>-<hash>``."""

    # A trial is keyed by (task, sample): which tasks and how many samples only choose
    # among trials, so an evaluation with more samples or another split reuses the
    # directory's trials and plays only the missing ones.
    _unhashed: ClassVar[set[str]] = {
        *TrialsConfig._unhashed,
        *("split", "heldout_fraction", "samples", "ks", "trials_dir"),
    }

    @field_validator("ks")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if min(ks) < 1:
            raise ValueError("every k must be at least 1")
        return sorted(set(ks))

    @model_validator(mode="after")
    def _enough_samples(self) -> AgenticEvalConfig:
        if max(self.ks) > self.samples:
            raise ValueError(f"k = {max(self.ks)} needs samples >= {max(self.ks)}")
        return self
