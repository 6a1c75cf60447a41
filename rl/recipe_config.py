"""``RecipeConfig``: K2's recipe as one run — which config each stage starts from.

A recipe names the config file of each stage (a synthesis job, an SFT run, a rejection-
sampling run, a GRPO run, an evaluation) with its own ``--set``-style overrides; the recipe
fills in what ties the stages together (output directories, the policy each stage starts
from, the task sources and their held-out split) and writes every stage's resolved config
into the run directory. Every stage config is loaded and validated with the recipe, so a
typo in any of them fails before the first stage starts, naming that file, line and field.
What the stages do is :mod:`rl.recipe`'s business; this module only validates.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from llm.yamlconf import (
    CHECK_FILES,
    TextFile,
    YamlConfigError,
    apply_overrides,
    load_yaml,
    load_yaml_model,
    require_mapping,
)

STRICT = ConfigDict(extra="forbid")
EvalPoint = Literal["base", "sft", "rejection", "grpo"]
EVAL_POINTS: tuple[EvalPoint, ...] = ("base", "sft", "rejection", "grpo")


class StageFile(BaseModel):
    """A stage's config file and the overrides applied to it (as ``--set`` would)."""

    model_config = STRICT
    config: TextFile
    """The stage's own config (``configs/synth/*.yaml``, ``configs/sft/*.yaml``, ...)."""
    set: list[str] = Field(default_factory=list)
    """``key.path=value`` overrides, applied before the recipe's own."""

    def data(self) -> dict[str, Any]:
        """The config file's mapping with ``set`` applied (file:line errors when bad)."""
        raw, node = load_yaml(self.config)
        require_mapping(raw, node, self.config, "config fields")
        return apply_overrides(copy.deepcopy(raw), self.set)


class RejectionStage(StageFile):
    """Rejection-sampling rounds: sample with the current policy, SFT on what passed."""

    rounds: int = Field(1, ge=0)
    """Rounds of (sample ``samples`` trajectories per train task → SFT on the passing ones);
    each round starts from the policy the previous stage left."""
    sft_set: list[str] = Field(default_factory=list)
    """Overrides for each round's SFT run, applied on top of the ``sft`` stage's config."""


class EvaluationStage(StageFile):
    """``python -m rl eval`` with a GRPO-run config whose ``agentic_eval`` block is used."""

    after: list[EvalPoint] = Field(default_factory=lambda: list(EVAL_POINTS))
    """After which stages the policy is evaluated (``base``: before any training)."""
    gyms: bool = False
    """Also evaluate the config's gyms (their own eval splits), not only agentic tasks."""


class RecipeConfig(BaseModel):
    """Synthesis → SFT → rejection-sampling rounds → GRPO, evaluated after every stage."""

    model_config = STRICT
    name: str = Field(min_length=1)
    run_dir: Path
    """One directory for the whole run: every stage's config, output, log and marker."""
    seed: int = 0
    policy: str = "embedded"
    """The base policy: ``embedded`` (SmolLM2-135M) or a local model directory."""
    heldout_fraction: float = Field(0.3, gt=0, lt=1)
    """Share of the synthesized tasks held out from every training stage and evaluated
    (chosen by a hash of the task id: ``rl.trials.split_of``)."""
    synth: StageFile
    """The synthesis job (``python -m synth run``): tasks, and trajectories for SFT."""
    sft: StageFile | None = None
    """SFT (``python -m rl sft``) on the data its config names (demonstrations) plus the
    synthesis' accepted train-split trajectories; its config also serves the rejection
    rounds' SFT (on their passing trials only). ``null``: no SFT stage."""
    rejection: RejectionStage | None = None
    """Rejection sampling (``python -m rl sample``); its SFT uses ``sft``'s config."""
    grpo: StageFile | None = None
    """GRPO (``python -m rl train``): its ``tool_use`` gym plays the train-split tasks."""
    evaluation: EvaluationStage
    """Evaluation (``python -m rl eval``) of held-out tasks after the chosen stages."""

    @model_validator(mode="after")
    def _stages_fit(self, info: ValidationInfo) -> RecipeConfig:
        if self.rejection is not None and self.rejection.rounds and self.sft is None:
            raise ValueError("rejection rounds train with the sft stage's config: add `sft`")
        if info.context and info.context.get(CHECK_FILES):
            check_stage_configs(self)
        return self


def check_stage_configs(config: RecipeConfig) -> None:
    """Validate every stage's config file (with its overrides) as its command will; a
    :class:`YamlConfigError` names the stage file, line and field."""
    from rl.config import TrainConfig
    from rl.sample_config import SampleConfig
    from rl.sft_config import SFTRunConfig
    from synth.config import SynthConfig

    stages: list[tuple[StageFile | None, type[BaseModel]]] = [
        (config.synth, SynthConfig),
        (config.sft, SFTRunConfig),
        (config.rejection, SampleConfig),
        (config.grpo, TrainConfig),
        (config.evaluation, TrainConfig),
    ]
    for stage, model in stages:
        if stage is not None:
            load_yaml_model(stage.config, model, stage.set)
    raw = config.evaluation.data()
    if not raw.get("agentic_eval"):
        raise YamlConfigError(
            [f"{config.evaluation.config}: agentic_eval: the recipe evaluates agentic tasks"]
        )


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, *, check_files: bool = False
) -> RecipeConfig:
    """``path`` as a :class:`RecipeConfig`; with ``check_files`` (the CLI's choice) every
    stage's config is loaded and validated too."""
    return load_yaml_model(path, RecipeConfig, overrides, check_files=check_files)
