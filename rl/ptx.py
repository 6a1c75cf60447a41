"""PTX loss: GRPO's loss plus ``weight`` x an SFT loss on a curated dataset.

K2 adds a pre-training-style loss during RL so the policy keeps what it knew. TRL's
``GRPOTrainer`` has no hook that adds to the loss (callbacks cannot touch it, reward
functions only shape advantages), so :class:`PtxGRPOTrainer` overrides exactly one method,
``compute_loss``: the GRPO loss of the micro-batch, plus the weighted next-token loss of
the next PTX batch, scaled for gradient accumulation as TRL scales its own loss. The PTX
loss is logged as ``ptx_loss``. Nothing else of the trainer changes.

Data: JSONL rows of ``{"messages": [...]}`` (every token is a target) or
``{"prompt", "completion"}`` (only the completion's tokens are targets).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, model_validator
from trl import GRPOTrainer

from rl import trl_seam
from rl.gyms.base import read_jsonl

IGNORE = -100


class PtxData:
    """Tokenized PTX examples served in seeded, cycling batches."""

    def __init__(
        self, path: str | Path, tokenizer: Any, *, batch_size: int, max_length: int, seed: int = 0
    ) -> None:
        self.examples = [_tokenize(r, tokenizer, max_length) for r in read_jsonl(path, PtxRow)]
        self.batch_size = batch_size
        self.pad_id = int(tokenizer.pad_token_id)
        self._rng = random.Random(seed)
        self._order: list[int] = []

    def next_batch(self) -> dict[str, torch.Tensor]:
        picked = []
        for _ in range(self.batch_size):
            if not self._order:
                self._order = list(range(len(self.examples)))
                self._rng.shuffle(self._order)
            picked.append(self.examples[self._order.pop()])
        width = max(len(ids) for ids, _ in picked)
        input_ids = torch.full((len(picked), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(picked), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(picked), width), dtype=torch.long)
        for row, (ids, targets) in enumerate(picked):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids)] = torch.tensor(targets)
            mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class PtxGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose training loss adds ``ptx_weight`` x the SFT loss of ``ptx``."""

    ptx: PtxData | None = None
    ptx_weight: float = 0.0

    def compute_loss(
        self,
        model: Any,
        inputs: Any,
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.ptx is None or not self.ptx_weight or not model.training:
            return loss
        batch = {k: v.to(loss.device) for k, v in self.ptx.next_batch().items()}
        ptx_loss = model(**batch).loss
        trl_seam.log_train_metric(self, "ptx_loss", float(ptx_loss.detach()))
        return loss + self.ptx_weight * ptx_loss / self.current_gradient_accumulation_steps


class PtxRow(BaseModel):
    """One curated example: chat ``messages``, or a ``prompt`` and its ``completion``."""

    model_config = ConfigDict(extra="ignore")
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    completion: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> PtxRow:
        if self.messages is None and (self.prompt is None or self.completion is None):
            raise ValueError("expected messages, or prompt and completion")
        return self


def _tokenize(row: PtxRow, tokenizer: Any, max_length: int) -> tuple[list[int], list[int]]:
    if row.messages is not None:
        text = tokenizer.apply_chat_template(row.messages, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
        return ids, list(ids)
    prompt = tokenizer(str(row.prompt), add_special_tokens=False)["input_ids"]
    completion = tokenizer(str(row.completion), add_special_tokens=False)["input_ids"]
    ids = (prompt + completion + [tokenizer.eos_token_id])[:max_length]
    targets = ([IGNORE] * len(prompt) + completion + [tokenizer.eos_token_id])[:max_length]
    return ids, targets
