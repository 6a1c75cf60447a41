"""A trainable critic in process: a causal LM judges a pair by the log-odds of "A" vs "B".

:class:`LocalCritic` renders a compact pair prompt (``local_pair.jinja``: the rubric criteria in
one line, delimited candidates — short, because a small model is slow and weak on long
prompts), asks for a single letter, and reads the next-token logits of ``A``
and ``B`` instead of sampling: the verdict is deterministic and needs no parsing, and
the margin is a calibrated-enough confidence. Refinement is one TRL DPO round on the
verified pairs, each shown in both orders with the correct letter preferred over the
wrong one; the trained weights are the critic's from then on (same object, so every
holder sees the update).

Not here: ranking (``rl.critique.reward``); GPU placement (CPU float32 unless the model
given is elsewhere).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rl.config import RefinementConfig
from rl.critique.agreement import VerifiedPair
from rl.critique.critics import TEMPLATES, ComparatorFor
from rubrics.critic import Comparator, Preference
from rubrics.judge import keyed
from rubrics.loader import RubricSet, library
from rubrics.render import defuse

log = logging.getLogger(__name__)
_TEMPLATE = TEMPLATES.get_template("local_pair.jinja")
_SYSTEM = "You judge which of two responses is better."
"""Short on purpose: chat templates otherwise add a default system prompt, and every token
of the pair prompt is paid for in each DPO step."""


class LocalCritic:
    """A Hugging Face causal LM as critic; ``load("embedded")`` gives SmolLM2."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        refinement: RefinementConfig | None = None,
        rubrics: list[str] | None = None,
        rubric_set: RubricSet | None = None,
    ) -> None:
        self.model = model
        self.rubrics = rubrics or ["core", "prescriptive"]
        """Rubric ids of the refinement rows (the reward's ``critic.rubrics``)."""
        self.rubric_set = rubric_set
        """Where rubric ids are looked up; unset: the built-in library."""
        self.tokenizer = tokenizer
        self.refinement = refinement or RefinementConfig(method="dpo")
        self.version = 0
        self.name = "local"
        self.debias = True
        """Judge by :meth:`symmetric_margin` (both orders, position bias cancelled)."""
        self._margins: dict[tuple, float] = {}
        self._letters = [self._token_id("A"), self._token_id("B")]

    @classmethod
    def load(
        cls,
        model: str,
        refinement: RefinementConfig | None = None,
        rubrics: list[str] | None = None,
        rubric_set: RubricSet | None = None,
    ) -> LocalCritic:
        """``embedded`` (the converted SmolLM2) or a local model directory."""
        from llm.embedded.model import ensure_converted, load_model

        path = ensure_converted() if model == "embedded" else Path(model)
        weights, tokenizer = load_model(path)
        return cls(weights, tokenizer, refinement, rubrics, rubric_set)

    def _token_id(self, letter: str) -> int:
        ids = self.tokenizer.encode(letter, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"the critic's tokenizer splits {letter!r} into {ids}")
        return int(ids[0])

    def messages(self, prompt: str, first: str, second: str, rubrics: list[str]) -> list[dict]:
        a, b = defuse(first), defuse(second)
        names = [c.description for _, _, c in keyed(rubrics, self.rubric_set or library())]
        # no nonce in the markers: defuse already keeps a response from closing its
        # block, and the hex would be a fifth of the prompt's tokens
        text = _TEMPLATE.render(prompt=defuse(prompt), a=a, b=b, criteria=names)
        return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": text}]

    def margin(self, prompt: str, first: str, second: str, rubrics: list[str]) -> float:
        """log p(A) - log p(B) for the next token: > 0 prefers ``first``."""
        import torch

        ids = self.tokenizer.apply_chat_template(
            self.messages(prompt, first, second, rubrics),
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"].to(self.model.device)
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0, -1].float()
        if was_training:
            self.model.train()
        logp = torch.log_softmax(logits, dim=-1)
        return float(logp[self._letters[0]] - logp[self._letters[1]])

    def symmetric_margin(self, prompt: str, first: str, second: str, rubrics: list[str]) -> float:
        """Half the difference of the margins in both orders: > 0 prefers ``first``.

        A small model's verdict is mostly position: SmolLM2 says "A" with a margin near 2.4
        whatever the pair. The difference cancels that bias exactly and keeps what the
        model reads in the responses — the part refinement can teach. Cached per weights
        version, so judging a pair in both orders costs two forward passes, not four."""
        key = (self.version, prompt, first, second, tuple(rubrics))
        if key not in self._margins:
            there = self.margin(prompt, first, second, rubrics)
            back = self.margin(prompt, second, first, rubrics)
            self._margins[key] = (there - back) / 2
            mirror = (self.version, prompt, second, first, tuple(rubrics))
            self._margins[mirror] = (back - there) / 2
        return self._margins[key]

    def judge(self, prompt: str, first: str, second: str, rubrics: list[str]) -> float:
        """The margin the critic's verdicts use (symmetric unless ``debias`` is off)."""
        if self.debias:
            return self.symmetric_margin(prompt, first, second, rubrics)
        return self.margin(prompt, first, second, rubrics)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[ComparatorFor]:
        def comparator(domain: str, rubrics: list[str]) -> Comparator:
            async def judge(prompt: str, first: str, second: str) -> tuple[Preference, str]:
                m = self.judge(prompt, first, second, rubrics)
                preference: Preference = "first" if m > 0 else "second" if m < 0 else "tie"
                return preference, f"log p(A) - log p(B) = {m:.3f}"

            return judge

        yield comparator

    def preference_rows(self, pairs: list[VerifiedPair], rubrics: list[str]) -> list[dict]:
        """DPO rows: each pair in both orders, the correct letter chosen."""
        rows = []
        for p in pairs:
            for better_first in (True, False):
                a, b = (p.better, p.worse) if better_first else (p.worse, p.better)
                right, wrong = ("A", "B") if better_first else ("B", "A")
                rows.append(
                    {
                        "prompt": self.messages(p.prompt, a, b, rubrics),
                        "chosen": [{"role": "assistant", "content": right}],
                        "rejected": [{"role": "assistant", "content": wrong}],
                    }
                )
        return rows

    def _freeze_below(self, top: int | None) -> None:
        """Only the top ``top`` decoder layers and the final norm get gradients."""
        params = list(self.model.parameters())
        if top is None:
            for p in params:
                p.requires_grad_(True)
            return
        decoder = self.model.get_decoder()
        layers = getattr(decoder, "layers", None)
        if layers is None:
            raise ValueError(
                f"critic.refinement.train_layers: {type(self.model).__name__} has no decoder "
                "layer list to freeze below; set train_layers: null to train every weight"
            )
        for p in params:
            p.requires_grad_(False)
        trained = [*layers[-top:], getattr(decoder, "norm", None)]
        for module in trained:
            if module is not None:
                for p in module.parameters():
                    p.requires_grad_(True)

    def refine(self, pairs: list[VerifiedPair]) -> None:
        """One TRL DPO round on ``pairs``; the model is updated in place."""
        if not pairs:
            return
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        cfg = self.refinement
        rows = self.preference_rows(pairs, self.rubrics)
        self._freeze_below(cfg.train_layers)
        with tempfile.TemporaryDirectory(prefix="summit-critic-dpo-") as out:
            args = DPOConfig(
                output_dir=out,
                max_steps=cfg.steps,
                learning_rate=cfg.learning_rate,
                beta=cfg.beta,
                per_device_train_batch_size=min(len(rows), 8),
                gradient_accumulation_steps=1,
                report_to=[],
                save_strategy="no",
                logging_steps=1,
                disable_tqdm=True,
                use_cpu=self.model.device.type == "cpu",
                # DPOConfig defaults to bf16 autocast; on a CPU that made one step of the
                # 135M critic take minutes instead of seconds
                bf16=self.model.device.type == "cuda",
                max_length=None,
                gradient_checkpointing=False,
                dataloader_num_workers=0,
            )
            trainer = DPOTrainer(
                model=self.model,
                args=args,
                train_dataset=Dataset.from_list(rows),
                processing_class=self.tokenizer,
            )
            trainer.train()
        self.model = trainer.model
        self.model.eval()
        self.version += 1
        self._margins.clear()
        log.info("local critic refined on %d pairs (%d rows)", len(pairs), len(rows))
