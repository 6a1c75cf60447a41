"""``SampleConfig``: everything ``python -m rl sample`` reads, validated field by field.

Loaded with :func:`llm.yamlconf.load_yaml_model` (``file:line: field: message``; ``--set
a.b=c`` overrides apply first) and written back resolved into the output directory, which
is bound to its hash: resuming under another config is refused rather than mixing two
datasets. Example (``configs/sample/demo.yaml``)::

    name: demo
    output_dir: runs/sample/demo
    tasks: [{run: runs/synth/demo}]
    samples: 4
    policy: {checkpoint: runs/sft/demo/final}
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from llm.embedded.model import check_checkpoint
from llm.endpoints import check_preset
from llm.errors import ConfigError
from llm.yamlconf import checking_files, load_yaml_model
from rl.trial_config import TrialsConfig
from synth.config import RoleEndpoint

EMBEDDED = "embedded"


class PolicyChoice(BaseModel):
    """The agent whose trajectories are sampled: a checkpoint served for the run, or an
    endpoint (one of the two; neither means the embedded default model)."""

    model_config = ConfigDict(extra="forbid")
    checkpoint: str | None = None
    """``embedded`` (the default model) or a local model directory (an SFT or GRPO
    output), served on 127.0.0.1 for the run by the embedded engine."""
    endpoint: RoleEndpoint | None = None
    """An endpoint preset instead (a vLLM server of the policy, K2, ...)."""

    @model_validator(mode="after")
    def _one(self, info: ValidationInfo) -> PolicyChoice:
        if self.checkpoint is not None and self.endpoint is not None:
            raise ValueError("give checkpoint or endpoint, not both")
        if self.endpoint is None and self.checkpoint is None:
            self.checkpoint = EMBEDDED
        if checking_files(info):
            if self.endpoint is not None:
                check_preset(self.endpoint.preset)
            elif self.checkpoint != EMBEDDED:
                try:
                    check_checkpoint(str(self.checkpoint))
                except ConfigError as exc:
                    raise ValueError(str(exc)) from None
        return self

    def describe(self) -> dict[str, str | None]:
        """What the manifest records about the policy."""
        if self.endpoint is not None:
            return {"endpoint": self.endpoint.preset, "model": self.endpoint.model}
        return {"checkpoint": self.checkpoint}


class SampleConfig(TrialsConfig):
    """``python -m rl sample CONFIG``: rejection sampling (expert iteration) with a policy."""

    name: str = Field("sample", min_length=1)
    """The run's name (in the manifest)."""
    output_dir: Path = Path("runs/sample")
    """The SFT dataset goes here, laid out like a synthesis run (``data/accepted/*.parquet``
    with ``messages`` and ``tools``, ``manifest.json``); a rerun resumes here."""
    policy: PolicyChoice = Field(default_factory=PolicyChoice)

    _unhashed: ClassVar[set[str]] = {*TrialsConfig._unhashed, "name", "output_dir"}


def load_sample_config(
    path: str | Path, overrides: list[str] | None = None, *, check_files: bool = False
) -> SampleConfig:
    """``path`` as a :class:`SampleConfig`; ``check_files`` (the CLI's choice) also checks
    the files, run directories, checkpoint and presets it names."""
    return load_yaml_model(path, SampleConfig, overrides, check_files=check_files)
