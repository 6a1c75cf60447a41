"""The wave engine: the embedded engine's batching before continuous batching, kept as
the baseline ``bench/engine.py`` measures against.

The engine thread takes up to ``max_batch`` queued requests at once (waiting
``gather_s`` for more), left-pads them into one batch and decodes them together with a
``DynamicCache`` until the last row is done; requests that arrive meanwhile wait for the
next wave. Rows that finish or are abandoned leave the wave at the next step. Sampling,
constraints and stop strings are the engine's own (:class:`BatchEngine`).
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

import torch

from llm.embedded.engine import BatchEngine, _Row, _settle

log = logging.getLogger(__name__)


class WaveEngine(BatchEngine):
    def __init__(self, model: Any, tokenizer: Any, *, gather_s: float = 0.01, **kwargs: Any):
        self.gather_s = gather_s
        super().__init__(model, tokenizer, prefix_cache_mb=0, **kwargs)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            rows = [first]
            deadline = time.monotonic() + self.gather_s
            while len(rows) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                rows.append(item)
            try:
                self._generate(rows)
            except Exception as exc:
                log.exception("generation failed for a batch of %d", len(rows))
                for row in rows:
                    _settle(row.future, exception=exc)

    @torch.inference_mode()
    def _generate(self, rows: list[_Row]) -> None:
        rows = self._start(rows)
        if not rows:
            return
        self.stats.batches += 1
        self.stats.rows_served += len(rows)
        width = max(len(r.request.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            prompt = row.request.prompt_ids
            ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[i, width - len(prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # thread counts are this thread's own settings: the process keeps its own
        torch.set_num_threads(self.prefill_threads)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        torch.set_num_threads(self.threads)
        past, logits = getattr(out, self._cache_kw), out.logits[:, -1, :]
        while rows:
            self._decide(rows, logits)
            keep = [i for i, r in enumerate(rows) if r.finish is None]
            if not keep:
                return
            if len(keep) < len(rows):  # done or abandoned rows leave the batch and its cache
                index = torch.tensor(keep, dtype=torch.long)
                past.batch_select_indices(index)
                rows = [rows[i] for i in keep]
                mask, positions = mask[index], positions[index]
            chosen = torch.tensor([r.tokens[-1] for r in rows], dtype=torch.long)
            self.stats.steps += 1
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            positions = positions[:, -1:] + 1
            out = self.model(
                input_ids=chosen.unsqueeze(1),
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kw: past},
            )
            past, logits = getattr(out, self._cache_kw), out.logits[:, -1, :]
