"""The self-critique rubric reward: a pairwise critic ranks each GRPO group.

:class:`CritiqueReward` scores one batch of a TRL reward call: awaited as
``areward(prompts, completions, verified=..., **kw)`` by the run's reward composition
(:mod:`rl.composition`, which hands it the gyms' verifier scores of the very same batch),
or called alone as a plain sync reward function. Per batch it

1. cuts the batch into groups (:mod:`rl.critique.groups`) and keeps the rows of the
   configured gyms; the critic reads whole trajectories — the prompt (system prompt and
   task) once per comparison, each candidate's user turns, tool calls with arguments,
   tool results and final answer — cut to ``max_trajectory_chars`` by the documented rule
   (``critic/cut_chars``: characters cut per row);
2. runs the prescriptive pre-checks of the judged rubrics: a flagged completion gets
   ``precheck_reward`` and is not ranked; a degenerate one (the gyms' gate,
   :func:`rl.gyms.base.text_degeneracy`: empty, an echo of the prompt, a loop, role
   markers, or cut by the generation cap before it finished a sentence, known from
   ``stop_ids``) is not ranked either and gets at most 0, however the group is scored, so
   no critic, however gullible, prefers it or rewards it;
3. ranks every group with ``rubrics.rank`` against core + prescriptive + the row's own
   rubrics, all groups concurrently, under a per-call budget and a concurrency cap, with
   verdicts cached by (critic version, domain, rubrics, prompt, both completions);
4. turns win rates into rewards (0..1, or centred on the group mean);
5. where the gyms scored the same completions (``verified``: one score or ``None`` per
   row, or an awaitable of them, awaited after ranking so verification and ranking
   overlap), measures the critic's agreement with the verifier per domain
   (``critic/verified``: the share of its rows that had a score) and collects verified
   pairs, and every ``refinement.every`` steps refines the critic on the pairs it got
   wrong, measuring held-out agreement before and after.

A group whose critic calls failed gets ``None`` (TRL leaves it out) and a warning; nothing
here raises into the training loop for a bad call. Metrics go through TRL's ``log_metric``
and are also kept in :attr:`CritiqueReward.metrics`.

Not here: back ends (``rl.critique.critics``, ``rl.critique.local``), agreement
arithmetic (``rl.critique.agreement``), config (``rl.config.CriticConfig``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from rl.config import CriticConfig
from rl.critique.agreement import AgreementLog, VerifiedPair, group_agreement, pair_agreement
from rl.critique.critics import ComparatorFor, CriticBackend
from rl.critique.groups import Group, candidate_of, groups, key, text_of
from rl.gyms.base import GYMS, cut, message_texts, text_degeneracy, unfinished
from rubrics import JudgeError, Ranking, RubricError, library, rank
from rubrics.critic import Comparator, Preference
from rubrics.pairing import strategy
from rubrics.prechecks import CHECKS

log = logging.getLogger(__name__)
SKIPPED = "skipped: critic call budget spent"
DEGENERATE = "degenerate"
"""The flag of a completion the gyms' gate finds degenerate (beside the pre-check names)."""
Verified = Sequence[float | None] | Awaitable[Sequence[float | None]] | None
"""The verifier's score of each row of the batch (``None``: no gym scored it)."""


class _Budgeted:
    """A comparator that caches verdicts and spends at most ``budget`` real calls."""

    def __init__(
        self,
        inner: Comparator,
        cache: dict[str, tuple[Preference, str]],
        tag: str,
        state: dict[str, Any],
    ) -> None:
        self.inner, self.cache, self.tag, self.state = inner, cache, tag, state

    async def __call__(self, prompt: str, first: str, second: str) -> tuple[Preference, str]:
        k = key(self.tag, prompt, first, second)
        if k in self.cache:
            self.state["cache_hits"] += 1
            return self.cache[k]
        budget = self.state["budget"]
        if budget is not None and self.state["calls"] >= budget:
            raise JudgeError(SKIPPED)
        self.state["calls"] += 1
        async with self.state["semaphore"]:
            verdict = await self.inner(prompt, first, second)
        self.cache[k] = verdict
        return verdict


class CritiqueReward:
    """TRL reward: rank each group with a pairwise critic. See the module docstring."""

    def __init__(
        self,
        config: CriticConfig,
        backend: CriticBackend,
        *,
        num_generations: int,
        stop_ids: Collection[int] = (),
    ) -> None:
        self.config = config
        self.stop_ids = set(stop_ids)
        """Ids a finished completion ends with (EOS, padding); others were cut."""
        self.backend = backend
        self.num_generations = num_generations
        self.metrics: dict[str, float] = {}
        """The last call's metrics (also sent to TRL's ``log_metric``)."""
        self.rationales: list[str] = []
        """A sample of the last call's pairwise rationales."""
        self.held_out: list[VerifiedPair] = []
        self.pending: list[VerifiedPair] = []
        """Verified pairs the critic got wrong since the last refinement."""
        self.refinements: list[dict[str, float | None]] = []
        self._agreement = AgreementLog()
        self._cache: dict[str, tuple[Preference, str]] = {}
        self._last_refined = 0
        self.rubric_set = library(*config.rubric_files)
        """The built-in rubrics plus ``critic.rubric_files``; the backend judges with it too
        (given to it here unless it was built with a set of its own)."""
        if backend.rubric_set is None:
            backend.rubric_set = self.rubric_set
        self._known = set(self.rubric_set.rubrics)
        self._checks = sorted(
            {c.precheck for _, c in self.rubric_set.merged(config.rubrics) if c.precheck}
        )
        """The pre-checks of ``critic.rubrics``, run on every completion."""
        self.__name__ = "critic"

    def __call__(self, prompts: list[Any], completions: list[Any], **kw: Any) -> list[float | None]:
        """The critic as a plain sync TRL reward function (on its own event loop per call;
        training awaits :meth:`areward` on TRL's loop instead)."""
        return asyncio.run(self.areward(prompts, completions, **kw))

    async def areward(
        self, prompts: list[Any], completions: list[Any], verified: Verified = None, **kw: Any
    ) -> list[float | None]:
        """Rewards for one batch; metrics logged, the critic refined when due."""
        rewards, metrics = await self.score(prompts, completions, verified, **kw)
        state = kw.get("trainer_state")
        step = int(getattr(state, "global_step", 0) or 0)
        metrics.update(await self._maybe_refine(step))
        self.metrics = metrics
        log_metric: Callable[[str, float], None] | None = kw.get("log_metric")
        if log_metric is not None:
            for name, value in metrics.items():
                log_metric(name, value)
        return rewards

    async def score(
        self, prompts: list[Any], completions: list[Any], verified: Verified = None, **kw: Any
    ) -> tuple[list[float | None], dict[str, float]]:
        """Rewards and metrics for one batch (the core of :meth:`areward`)."""
        cfg = self.config
        gyms: list[str] | None = kw.get("gym")
        limit = cfg.max_trajectory_chars
        wanted = [
            g
            for g in groups(prompts, self.num_generations, gyms, limit)
            if cfg.gyms is None or g.domain in cfg.gyms
        ]
        out: list[float | None] = [None] * len(prompts)
        state: dict[str, Any] = {
            "calls": 0,
            "cache_hits": 0,
            "budget": cfg.calls_per_step,
            "semaphore": asyncio.Semaphore(cfg.max_concurrency),
        }
        ids = kw.get("completion_ids") or [[] for _ in prompts]
        flagged = {
            i: self._flags(prompts[i], completions[i], g.domain, cut(ids[i], self.stop_ids))
            for g in wanted
            for i in g.indices
        }
        shown = {i: candidate_of(completions[i], limit) for g in wanted for i in g.indices}
        texts = {i: rendered.text for i, rendered in shown.items()}
        async with self.backend.connect() as comparator_for:
            rankings = await asyncio.gather(
                *(self._rank(g, texts, flagged, comparator_for, state, kw) for g in wanted)
            )
        scores = await verified if inspect.isawaitable(verified) else verified
        metrics: dict[str, float] = {"critic/calls": float(state["calls"])}
        metrics["critic/cache_hits"] = float(state["cache_hits"])
        failed = 0
        self.rationales = []
        for g, ranking in zip(wanted, rankings, strict=True):
            values = self._rewards(g, ranking, flagged)
            if values is None:
                failed += 1
                continue
            for i, v in zip(g.indices, values, strict=True):
                out[i] = v
            if ranking is not None:
                self._agree(g, ranking, texts, scores, flagged)
                self._sample_rationales(ranking)
        metrics["critic/failed_groups"] = float(failed)
        metrics.update(_seen_stats(wanted, shown, scores))
        metrics.update(self._batch_stats(wanted, out, completions, flagged))
        metrics.update({f"critic/agreement/{d}": a for d, a in self._agreement.take().items()})
        for rationale in self.rationales:
            log.info("critic rationale: %s", rationale)
        return out, metrics

    def _flags(self, prompt: Any, completion: Any, domain: str, truncated: bool) -> list[str]:
        """The pre-checks ``completion`` fails, and ``degenerate`` when the gyms' gate
        would score it 0 unverified."""
        text = text_of(completion)
        flags: list[str] = [name for name in self._checks if CHECKS[name](text)]
        prompts = [prompt] if isinstance(prompt, str) else message_texts(prompt or [])
        code = getattr(GYMS.get(domain), "answers_in_code", False)
        if text_degeneracy(text, prompts, code=code) or (truncated and unfinished(text)):
            flags.append(DEGENERATE)
        return flags

    def _rubrics_of(self, group: Group, kw: dict[str, Any]) -> list[str]:
        ids = list(self.config.rubrics)
        column = kw.get(self.config.rubric_column)
        raw = column[group.indices[0]] if column is not None else None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raw = [raw]
        for rid in raw or []:
            if rid not in self._known:
                log.warning("critic: unknown rubric id %r on a row; ignored", rid)
            elif rid not in ids:
                ids.append(rid)
        return ids

    async def _rank(
        self,
        group: Group,
        texts: dict[int, str],
        flagged: dict[int, list[str]],
        comparator_for: ComparatorFor,
        state: dict[str, Any],
        kw: dict[str, Any],
    ) -> Ranking | None:
        ranked = [i for i in group.indices if not flagged[i]]
        if len(ranked) < 2:
            return None
        ids = self._rubrics_of(group, kw)
        tag = f"{self.backend.version}\x00{group.domain}\x00{','.join(ids)}"
        try:
            inner = comparator_for(group.domain, ids)
        except RubricError as exc:
            log.warning("critic: cannot judge against %s: %s", ids, exc)
            return Ranking(scores=[], win_rates=[], failures=1)
        return await rank(
            group.prompt,
            [texts[i] for i in ranked],
            _Budgeted(inner, self._cache, tag, state),
            pairing=strategy(self.config.pairing, len(ranked), self.config.pairs_per_group),
            both_orders=self.config.both_orders,
        )

    def _rewards(
        self, group: Group, ranking: Ranking | None, flagged: dict[int, list[str]]
    ) -> list[float] | None:
        """Rewards for the group's rows, or None when the critic failed on it."""
        low = self.config.precheck_reward
        if ranking is None:  # fewer than two rankable completions: nothing to compare
            if len(group.indices) == 1 and not flagged[group.indices[0]]:
                return None  # a lone completion (a group cut by the batch split)
            values = [low if flagged[i] else 1.0 for i in group.indices]
            return _floor_degenerate(group, values, flagged, low)
        errors = [c.error for c in ranking.comparisons if c.error and c.error != SKIPPED]
        resolved = [c for c in ranking.comparisons if c.preference is not None]
        if errors or not ranking.win_rates or not resolved:
            reason = errors[0] if errors else "no comparison resolved within the budget"
            log.warning("critic: group of %r gets no reward: %s", group.prompt[:60], reason)
            return None
        wins = iter(ranking.win_rates)
        values = [low if flagged[i] else next(wins) for i in group.indices]
        if self.config.reward == "centred":
            mean = sum(values) / len(values)
            values = [v - mean for v in values]
        return _floor_degenerate(group, values, flagged, low)

    def _agree(
        self,
        group: Group,
        ranking: Ranking,
        texts: dict[int, str],
        scores: Sequence[float | None] | None,
        flagged: dict[int, list[str]],
    ) -> None:
        if scores is None:
            return
        ranked = [i for i in group.indices if not flagged[i]]
        verifier = [scores[i] for i in ranked]
        if sum(v is not None for v in verifier) < 2:
            return
        shown = [texts[i] for i in ranked]
        result = group_agreement(group.prompt, shown, ranking.scores, verifier, group.domain)
        self._agreement.add(group.domain, result)
        room = self.config.refinement.held_out - len(self.held_out)
        fresh = [p for p in result.verified if p not in self.held_out]
        self.held_out.extend(fresh[: max(room, 0)])
        held = set(self.held_out)
        self.pending.extend(p for p in result.disagreements if p not in held)

    def _sample_rationales(self, ranking: Ranking) -> None:
        if len(self.rationales) >= self.config.rationale_samples:
            return
        for c in ranking.comparisons:
            if c.rationale and len(self.rationales) < self.config.rationale_samples:
                self.rationales.append(f"{c.first} vs {c.second} -> {c.preference}: {c.rationale}")

    def _batch_stats(
        self,
        wanted: list[Group],
        rewards: list[float | None],
        completions: list[Any],
        flagged: dict[int, list[str]],
    ) -> dict[str, float]:
        rows = [i for g in wanted for i in g.indices]
        stats: dict[str, float] = {}
        if rows:
            hits = [name for i in rows for name in flagged[i]]
            for name in self._checks:
                stats[f"critic/precheck/{name}"] = hits.count(name) / len(rows)
            stats["critic/degenerate"] = hits.count(DEGENERATE) / len(rows)
        scored = [i for i in rows if rewards[i] is not None]
        if scored:
            values = [float(rewards[i] or 0.0) for i in scored]
            stats["critic/reward_mean"] = sum(values) / len(values)
            lengths = [float(len(text_of(completions[i]))) for i in scored]
            corr = pearson(lengths, values)
            if corr is not None:
                stats["critic/length_correlation"] = corr
        return stats

    async def _maybe_refine(self, step: int) -> dict[str, float]:
        cfg = self.config.refinement
        if cfg.method == "none" or not self.pending or step - self._last_refined < cfg.every:
            return {}
        before = await self.aheld_out_agreement()
        pairs, self.pending = self.pending, []
        self.backend.refine(pairs)
        self._last_refined = step
        after = await self.aheld_out_agreement()
        self.refinements.append(
            {"step": step, "pairs": len(pairs), "before": before, "after": after}
        )
        log.info(
            "critic refined on %d pairs at step %d: held-out %s -> %s",
            len(pairs),
            step,
            before,
            after,
        )
        metrics = {"critic/refine/pairs": float(len(pairs))}
        if before is not None and after is not None:
            metrics.update(
                {"critic/refine/held_out_before": before, "critic/refine/held_out_after": after}
            )
        return metrics

    def held_out_agreement(self) -> float | None:
        """Agreement of the current critic on the held-out verified pairs (both orders)."""
        return asyncio.run(self.aheld_out_agreement())

    async def aheld_out_agreement(self) -> float | None:
        """:meth:`held_out_agreement` on the running loop (the critic's shared client)."""
        if not self.held_out:
            return None
        return await _held_out(self.backend, self.config.rubrics, self.held_out)


async def _held_out(
    backend: CriticBackend, rubrics: list[str], pairs: list[VerifiedPair]
) -> float | None:
    scores: list[float] = []
    async with backend.connect() as comparator_for:
        by_domain: dict[str, list[VerifiedPair]] = {}
        for p in pairs:
            by_domain.setdefault(p.domain, []).append(p)
        for domain, chunk in by_domain.items():
            value = await pair_agreement(comparator_for(domain, rubrics), chunk)
            if value is not None:
                scores.extend([value] * len(chunk))
    return sum(scores) / len(scores) if scores else None


def _seen_stats(
    wanted: list[Group],
    shown: dict[int, Any],
    scores: Sequence[float | None] | None,
) -> dict[str, float]:
    """What the critic read: characters cut per row (task and candidate, by the cut rule),
    and the share of its rows that came with a verifier score."""
    rows = [i for g in wanted for i in g.indices]
    if not rows:
        return {}
    cut_chars = sum(shown[i].cut for i in rows) + sum(g.prompt_cut * len(g.indices) for g in wanted)
    stats = {"critic/cut_chars": cut_chars / len(rows)}
    known = sum(scores is not None and scores[i] is not None for i in rows)
    stats["critic/verified"] = known / len(rows)
    return stats


def _floor_degenerate(
    group: Group, values: list[float], flagged: dict[int, list[str]], low: float
) -> list[float]:
    """Degenerate rows get ``min(precheck_reward, 0)``, after centring: never a reward."""
    floor = min(low, 0.0)
    return [
        floor if DEGENERATE in flagged[i] else v for i, v in zip(group.indices, values, strict=True)
    ]


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation; None when either side is constant or too short.

    >>> round(pearson([1, 2, 3], [2, 4, 7]), 3)
    0.993
    """
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)
