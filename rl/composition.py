"""The run's rewards composed explicitly: every gym's verifier first, then the critic with them.

TRL calls each reward function of a batch with the same arguments: the synchronous ones
one after another in list order, then the asynchronous ones concurrently on its own
persistent event loop (``trainer.async_loop``). :class:`RewardComposition` makes every
reward asynchronous — one function per gym, named after it (so TRL keeps a weight and a
``rewards/<gym>/mean`` per gym), and ``critic`` — and makes the order they depend on
explicit instead of trusting the call order:

* the first function called for a batch starts :meth:`RewardComposition.verified` for it:
  every gym verifies its rows, all gyms concurrently (``Gym.averify_batch``, the degenerate
  gate and the budget applied); later calls for the same batch await the same work, so a
  verifier runs once per batch whoever asks first;
* each gym's function returns its own column of that result and logs its metrics;
* the critic ranks its groups at once and awaits the batch's verifier scores before it
  measures agreement with them.

A batch is known by its identity, never by call order: the ``completions`` list object
TRL hands every reward function of one call (held, so its id is not reused) together with
a fingerprint of the batch's content (prompts, completions, ids, gym and task columns),
so a new batch — or the same list changed in place — is verified afresh and the critic
never reads another batch's scores. The last :data:`KEEP` batches are remembered.

Not here: the gyms' verifiers (``rl.gyms``), the critic (``rl.critique``), weights
(``rl.trainer``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from rl.gyms.base import Budget, Gym, asafe_scores, batch_samples, gym_rewards

KEEP = 4
"""Batches whose verification is remembered (TRL has one in flight at a time)."""
AsyncReward = Callable[..., Any]


@dataclass
class BatchScores:
    """The verification of one batch: each gym's reward column and metrics."""

    columns: dict[str, list[float | None]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def verified(self, size: int) -> list[float | None]:
        """Each row's score from the gym it belongs to (``None`` where none scored it)."""
        out: list[float | None] = [None] * size
        for column in self.columns.values():
            for i, value in enumerate(column):
                if value is not None:
                    out[i] = value
        return out


@dataclass
class _Entry:
    batch: list[Any]
    """The batch's ``completions`` list, held so its id is not reused while remembered."""
    fingerprint: str
    task: asyncio.Future[BatchScores]


class RewardComposition:
    """Every gym's reward and the critic's, composed per batch (see the module docstring).

    Example::

        composition = RewardComposition(gyms, budgets, critic=critique)
        reward_funcs = composition.functions()   # [gym_1, ..., gym_n, critic], all async
    """

    def __init__(
        self,
        gyms: list[Gym],
        budgets: list[Budget] | None = None,
        *,
        critic: Any = None,
        decode: Callable[[list[int]], str] | None = None,
        stop_ids: Collection[int] = (),
    ) -> None:
        self.gyms = gyms
        self.budgets = budgets or [Budget() for _ in gyms]
        if len(self.budgets) != len(gyms):
            raise ValueError(f"{len(self.budgets)} budgets for {len(gyms)} gyms")
        self.critic = critic
        """The :class:`~rl.critique.CritiqueReward`, or None."""
        self.decode = decode
        self.stop_ids = set(stop_ids)
        self.verifications = 0
        """Batches verified so far (each gym's verifier ran once for each)."""
        self._batches: OrderedDict[tuple[int, str], _Entry] = OrderedDict()

    def functions(self) -> list[AsyncReward]:
        """TRL's reward functions: one per gym, in order, then ``critic`` when there is one."""
        funcs = [self._gym_reward(gym) for gym in self.gyms]
        if self.critic is not None:
            funcs.append(self._critic_reward())
        return funcs

    def _gym_reward(self, gym: Gym) -> AsyncReward:
        async def reward(
            prompts: list[Any], completions: list[Any], **kw: Any
        ) -> list[float | None]:
            scores = await self.verified(prompts, completions, kw)
            log_metric = kw.get("log_metric")
            for name, value in scores.metrics.get(gym.name, {}).items():
                if log_metric is not None:
                    log_metric(name, value)
            return list(scores.columns[gym.name])

        reward.__name__ = gym.name
        return reward

    def _critic_reward(self) -> AsyncReward:
        async def critic(
            prompts: list[Any], completions: list[Any], **kw: Any
        ) -> list[float | None]:
            verification = self.verified(prompts, completions, kw)

            async def scores() -> list[float | None]:
                return (await verification).verified(len(prompts))

            return await self.critic.areward(prompts, completions, verified=scores(), **kw)

        critic.__name__ = "critic"
        critic.critique = self.critic  # type: ignore[attr-defined]
        return critic

    def verified(
        self, prompts: list[Any], completions: list[Any], kw: dict[str, Any]
    ) -> asyncio.Future[BatchScores]:
        """The verification of this batch: started by the first caller, shared after.
        Call it on the loop that awaits it (TRL's reward loop)."""
        fingerprint = _fingerprint(prompts, completions, kw)
        key = (id(completions), fingerprint)
        entry = self._batches.get(key)
        if entry is None or entry.batch is not completions:
            task = asyncio.ensure_future(self._verify(prompts, completions, kw))
            entry = _Entry(completions, fingerprint, task)
            self._batches[key] = entry
            while len(self._batches) > KEEP:
                self._batches.popitem(last=False)
        return entry.task

    async def _verify(
        self, prompts: list[Any], completions: list[Any], kw: dict[str, Any]
    ) -> BatchScores:
        self.verifications += 1
        pairs = zip(self.gyms, self.budgets, strict=True)
        done = await asyncio.gather(*(self._one(g, b, prompts, completions, kw) for g, b in pairs))
        out = BatchScores()
        for gym, (column, metrics) in zip(self.gyms, done, strict=True):
            out.columns[gym.name], out.metrics[gym.name] = column, metrics
        return out

    async def _one(
        self,
        gym: Gym,
        budget: Budget,
        prompts: list[Any],
        completions: list[Any],
        kw: dict[str, Any],
    ) -> tuple[list[float | None], dict[str, float]]:
        batch = batch_samples(
            gym, prompts, completions, kw, budget=budget, decode=self.decode, stop_ids=self.stop_ids
        )
        if not batch.rows:
            return [None] * len(prompts), {}
        scores, reasons = await asafe_scores(gym, batch.samples)
        return gym_rewards(gym, batch, len(prompts), scores, reasons, budget)


def _fingerprint(prompts: list[Any], completions: list[Any], kw: dict[str, Any]) -> str:
    """A hash of what a batch's verification depends on, and the environments it read."""
    content = {
        "prompts": prompts,
        "completions": completions,
        "ids": kw.get("completion_ids"),
        "gym": kw.get("gym"),
        "task": kw.get("task"),
        "environments": [id(e) for e in kw.get("environments") or []],
    }
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
