"""What every gym is: a task source (``load``) and a verifier (``verify``), registered by name.

A :class:`Gym` turns its options into :class:`Task` rows (OpenAI prompt messages plus a
JSON payload the verifier reads back) and scores one :class:`Sample` at a time, returning
a float in 0..1, or ``None`` where it cannot say (a judge that failed): TRL then leaves
that reward out for the sample. Gyms that score in batches (a sandbox pool, concurrent
judge calls) override ``verify_batch`` instead. Training awaits ``averify_batch``, which
runs ``verify_batch`` in a worker thread unless a gym implements it natively (the judged
gyms do, on the run's shared judge client: :meth:`Resources.judge_client`). Verifiers
never raise on odd completions; an exception in one is logged and becomes ``None`` for
that batch, never a crashed run.

Before any verifier runs, :func:`gated_scores` scores a *degenerate* completion 0.0 (not
``None``: degenerate text must be punished, not left out): a final text that is empty,
echoes a prompt message, loops, writes other turns' role markers
(:mod:`rubrics.degenerate`), or was cut by the token budget before it finished a single
sentence or line. A gym cannot be earned by saying nothing, whatever its verifier would
make of nothing (an instruction-following task whose constraints are all upper bounds or
exclusions is met by the empty string).

:func:`reward_function` wraps a gym into TRL's seam, ``fn(prompts, completions, **kw) ->
list[float | None]``: ``None`` for rows of other gyms, the gate and the budget penalty
applied, and the gym's reward mean, pass rate, degenerate share and lengths logged through
TRL's ``log_metric``. It is synchronous, for one gym on its own; training composes every
gym and the critic asynchronously from the same pieces (:func:`batch_samples`,
:func:`agated_scores`, :func:`gym_rewards`) in :mod:`rl.composition`. The budget counts
the policy's own tokens: an environment's ``policy_tokens`` where the roll-out reports it
(multi-turn completions also hold the user's and the tools' masked tokens), else the
completion's length.

Not here: which gyms are mixed and how much (``rl.data``), reward weights (``rl.trainer``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import multiprocessing
import random
import re
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm.types import final_assistant_text
from llm.yamlconf import YamlConfigError, first_problem, read_text
from rl.clients import ClientPool
from rubrics.degenerate import degeneracy

log = logging.getLogger(__name__)

Split = Literal["train", "eval"]
Messages = list[dict[str, Any]]
RewardFunc = Callable[..., list[float | None]]
PLAIN_ENVIRONMENT = "text"
"""The routing key of rows that act in no environment (TRL's ``environment`` column)."""
_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_FINISHED = re.compile(r"[.!?…](?=[\s\"”')\]]|$)|\S[^\n]*\n")
"""A sentence end or a whole line: a cut text with neither never finished anything."""


class GymError(Exception):
    """A gym cannot be built or cannot load its tasks (bad options, unreadable file)."""


class ScoreCountError(GymError):
    """A verifier returned a different number of scores than it was given samples: a bug
    in the gym, raised rather than guessed around."""


class GymOptions(BaseModel):
    """Options every gym takes; a gym's own ``Options`` subclasses this."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(64, ge=1)
    """How many training tasks to load."""
    eval_count: int = Field(8, ge=0)
    """How many held-out tasks ``python -m rl eval`` scores (never used in training)."""
    seed: int = 0
    """Seed for procedural generation and for shuffling file-backed tasks."""


@dataclass(frozen=True)
class Task:
    """One prompt and what its verifier needs to score a completion."""

    prompt: Messages
    payload: dict[str, Any]
    environment: str = PLAIN_ENVIRONMENT
    """TRL routing key; tool-use tasks name their environment."""


@dataclass
class Sample:
    """One completion to score: the prompt, the completion messages, the task payload."""

    prompt: Messages
    completion: Messages
    payload: dict[str, Any]
    environment: Any = None
    """The TRL environment instance the roll-out acted in, where there is one."""
    tokens: int = 0
    truncated: bool = False
    """The text was cut (by the gym's token budget or the generation cap): it stops where
    the cut fell, not where the model ended, so its last line is no final answer."""

    @property
    def text(self) -> str:
        """The final assistant text (the last assistant message with string content)."""
        return final_assistant_text(self.completion) or ""

    @property
    def user_text(self) -> str:
        """The last user message of the prompt."""
        for message in reversed(self.prompt):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""

    @property
    def prompt_texts(self) -> list[str]:
        """Every prompt message's text (system and user), for the prompt-echo check."""
        return message_texts(self.prompt)


@dataclass
class Resources:
    """Shared services gyms may use, created lazily by whoever builds the gyms."""

    judge: Callable[[], Any] | None = None
    """Returns the :class:`llm.Endpoint` judge-based gyms call."""
    sandbox: Callable[[], Any] | None = None
    """Returns the shared :class:`sandboxes.docker.DockerSandbox` code gyms run in."""
    clients: ClientPool = field(default_factory=ClientPool)
    """The run's long-lived chat clients (``rl.trainer.Services`` shares and closes its own)."""
    cache: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, name: Literal["judge", "sandbox"]) -> Any:
        """The resource, made once (verifiers run in threads: two never make it twice)."""
        with self._lock:
            if name not in self.cache:
                factory = getattr(self, name)
                if factory is None:
                    raise GymError(f"this gym needs a {name}, and none is configured")
                self.cache[name] = factory()
            return self.cache[name]

    def judge_client(self) -> Any:
        """The run's one :class:`llm.ChatClient` for the judge endpoint, on the running
        event loop: call it inside ``averify_batch`` (a coroutine), use it, never close it.
        Made on first use; ``rl.trainer.Services`` closes it when the run ends."""
        return self.clients.get("judge", lambda: self.get("judge"))


G = TypeVar("G", bound="type[Gym]")
GYMS: dict[str, type[Gym]] = {}


def register(cls: G) -> G:
    """Class decorator: make the gym available by its ``name`` in configs."""
    if cls.name in GYMS and GYMS[cls.name] is not cls:
        raise GymError(f"two gyms are named {cls.name!r}: {GYMS[cls.name]} and {cls}")
    GYMS[cls.name] = cls
    return cls


class Gym(ABC):
    """A task source plus a verifier. Subclasses set ``name``/``Options`` and implement
    ``load`` and ``verify`` (or ``verify_batch``); they do not override ``__init__``."""

    name: ClassVar[str]
    Options: ClassVar[type[GymOptions]] = GymOptions
    pass_threshold: ClassVar[float] = 1.0
    """A sample whose score reaches this counts as passed (pass rates, pass@k)."""
    isolated: ClassVar[bool] = False
    """The verifier needs a main thread (signal-based timeouts, as math-verify's): in
    training it runs in a worker process, on samples without their environment."""
    answers_in_code: ClassVar[bool] = False
    """Answers are code: a fenced block is one word to the loop check, since code repeats
    tokens by nature (``[0, 0, 0, 0, 0]``)."""

    def __init__(self, options: GymOptions | None = None, resources: Resources | None = None):
        self.options = options if options is not None else self.Options()
        self.resources = resources or Resources()

    @abstractmethod
    def load(self, split: Split) -> list[Task]:
        """The tasks of ``split``; train and eval never share a task."""

    def verify(self, sample: Sample) -> float | None:
        """Score one completion in 0..1 (``None``: cannot say)."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither verify nor verify_batch"
        )

    def verify_batch(self, samples: list[Sample]) -> list[float | None]:
        return [self.verify(s) for s in samples]

    async def averify_batch(self, samples: list[Sample]) -> list[float | None]:
        """``verify_batch`` awaited in training, on TRL's reward loop. By default the sync
        verifier runs in a worker thread (so gyms verify concurrently); gyms that call
        models override this and await them on the shared client
        (:meth:`Resources.judge_client`). An :attr:`isolated` gym verifies in a worker
        process instead."""
        if self.isolated:
            detached = [dataclasses.replace(s, environment=None) for s in samples]
            options = self.options.model_dump(mode="json")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                _worker_pool(), _verify_detached, self.name, options, detached
            )
        return await asyncio.to_thread(self.verify_batch, samples)

    def degeneracy(self, sample: Sample) -> str | None:
        """Why ``sample`` scores 0.0 without being verified (a reason of
        :mod:`rubrics.degenerate`, or ``truncated``), or ``None`` when it is verified."""
        reason = text_degeneracy(sample.text, sample.prompt_texts, code=self.answers_in_code)
        if reason is None and sample.truncated and unfinished(sample.text):
            return "truncated"
        return reason

    def passed(self, score: float | None) -> bool:
        return score is not None and score >= self.pass_threshold - 1e-9

    def rows(self, split: Split) -> list[dict[str, Any]]:
        """The tasks as dataset rows: ``prompt``, ``gym``, ``task`` (JSON), ``environment``."""
        return [
            {
                "prompt": t.prompt,
                "gym": self.name,
                "task": json.dumps(t.payload, ensure_ascii=False),
                "environment": t.environment,
            }
            for t in self.load(split)
        ]


def build_gym(name: str, options: dict[str, Any], resources: Resources | None = None) -> Gym:
    """The gym ``name`` with its options validated (``GymError`` naming the problem)."""
    import rl.gyms  # noqa: F401 - registers the built-in gyms

    if name not in GYMS:
        raise GymError(f"unknown gym {name!r}; known: {', '.join(sorted(GYMS))}")
    cls = GYMS[name]
    return cls(cls.Options.model_validate(options), resources)


_POOL: list[ProcessPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _worker_pool() -> ProcessPoolExecutor:
    """The one worker process isolated verifiers share (spawned: the trainer's threads
    must not be forked), made on first use."""
    with _POOL_LOCK:
        if not _POOL:
            context = multiprocessing.get_context("spawn")
            _POOL.append(ProcessPoolExecutor(max_workers=1, mp_context=context))
        return _POOL[0]


def _verify_detached(name: str, options: dict[str, Any], samples: list[Sample]) -> list[Any]:
    """In the worker process: the gym rebuilt from its options verifies ``samples``."""
    return build_gym(name, options).verify_batch(samples)


@dataclass(frozen=True)
class Budget:
    """K2's budget control: completions over ``max_tokens`` are scored on their first
    ``max_tokens`` tokens only and lose ``penalty``."""

    max_tokens: int | None = None
    penalty: float = 0.0


def message_texts(messages: Sequence[dict[str, Any]]) -> list[str]:
    """The non-empty string contents of ``messages``."""
    return [m["content"] for m in messages if isinstance(m.get("content"), str) and m["content"]]


def text_degeneracy(text: str, prompts: Sequence[str] = (), *, code: bool = False) -> str | None:
    """Why ``text`` is degenerate, or ``None``: empty, an echo of any one prompt message (or
    of all of them), a loop, role markers (:func:`rubrics.degenerate.degeneracy`).

    ``code``: a fenced code block counts as one word (a hash of its text) in the loop
    check, so ``[0, 0, 0, 0, 0]`` inside code is no loop but the same block ten times over is.

    >>> text_degeneracy("Paris", ["What is the capital of France?"]) is None
    True
    """
    if degeneracy(text, checks=("empty",)):
        return "empty"
    echoed = [*prompts, "\n".join(prompts)] if len(prompts) > 1 else list(prompts)
    if any(degeneracy(text, prompt=p, checks=("prompt_echo",)) for p in echoed):
        return "prompt_echo"
    if degeneracy(_blocks_as_words(text) if code else text, checks=("repetition",)):
        return "repetition"
    return degeneracy(text, checks=("role_markers",))


def _blocks_as_words(text: str) -> str:
    return _FENCED.sub(lambda m: f" block{zlib.crc32(m.group().encode()):08x} ", text)


def unfinished(text: str) -> bool:
    """No sentence end and no whole line: a text cut here had said nothing complete yet."""
    return not _FINISHED.search(text)


def cut(ids: Sequence[int], stop_ids: Collection[int]) -> bool:
    """The completion ``ids`` end in none of ``stop_ids`` (EOS, padding): the generation cap
    cut it. Never true without ``stop_ids``."""
    return bool(stop_ids) and bool(ids) and ids[-1] not in stop_ids


def gated_scores(gym: Gym, samples: list[Sample]) -> tuple[list[float | None], list[str | None]]:
    """Scores of ``samples`` and why each degenerate one was not verified.

    A degenerate sample (:meth:`Gym.degeneracy`) scores 0.0 and never reaches the
    verifier (no sandbox run, no judge call); the others are scored by ``verify_batch``.
    Training (:func:`reward_function`) and evaluation (``rl.evaluate``) both score here.
    """
    reasons = [gym.degeneracy(s) for s in samples]
    rest = [s for s, reason in zip(samples, reasons, strict=True) if reason is None]
    return _merge(gym, reasons, gym.verify_batch(rest) if rest else [], len(rest))


async def agated_scores(
    gym: Gym, samples: list[Sample]
) -> tuple[list[float | None], list[str | None]]:
    """:func:`gated_scores` awaiting :meth:`Gym.averify_batch` (the training path)."""
    reasons = [gym.degeneracy(s) for s in samples]
    rest = [s for s, reason in zip(samples, reasons, strict=True) if reason is None]
    verified = await gym.averify_batch(rest) if rest else []
    return _merge(gym, reasons, verified, len(rest))


def _merge(
    gym: Gym, reasons: list[str | None], verified: list[float | None], asked: int
) -> tuple[list[float | None], list[str | None]]:
    if len(verified) != asked:
        raise ScoreCountError(f"gym {gym.name}: {len(verified)} scores for {asked} samples")
    scores = iter(verified)
    return [0.0 if reason else next(scores) for reason in reasons], reasons


@dataclass
class GymBatch:
    """The rows of one reward call that belong to one gym, as samples to score."""

    rows: list[int]
    samples: list[Sample]
    over: list[bool]
    """Each sample went over the budget (its reward loses ``budget.penalty``)."""


def batch_samples(
    gym: Gym,
    prompts: list[Any],
    completions: list[Any],
    kw: dict[str, Any],
    *,
    budget: Budget,
    decode: Callable[[list[int]], str] | None = None,
    stop_ids: Collection[int] = (),
) -> GymBatch:
    """The samples of ``gym``'s rows in a TRL reward call (``kw``: TRL's reward kwargs).

    The budget counts the environment's ``policy_tokens`` when it reports them, else the
    completion ids. An over-budget single-message completion is scored on its first
    ``budget.max_tokens`` tokens (``decode`` turns them back into text); a multi-message
    one is scored whole and only penalised.
    """
    gyms = kw.get("gym") or [None] * len(prompts)
    rows = [i for i, g in enumerate(gyms) if g == gym.name]
    ids = kw.get("completion_ids") or [[] for _ in prompts]
    environments = kw.get("environments") or [None] * len(prompts)
    samples, over = [], []
    for i in rows:
        completion = _as_messages(completions[i])
        tokens = list(ids[i])
        count = policy_tokens(environments[i], tokens)
        over_budget = budget.max_tokens is not None and count > budget.max_tokens
        shortened = over_budget and decode is not None and len(completion) == 1
        if shortened and decode is not None:
            completion = [{**completion[0], "content": decode(tokens[: budget.max_tokens])}]
        samples.append(
            Sample(
                prompt=_as_messages(prompts[i], role="user"),
                completion=completion,
                payload=_payload(kw.get("task"), i),
                environment=environments[i],
                tokens=count,
                truncated=shortened or cut(tokens, stop_ids),
            )
        )
        over.append(over_budget)
    return GymBatch(rows, samples, over)


def policy_tokens(environment: Any, ids: Sequence[int]) -> int:
    """The tokens the policy itself generated: the roll-out's ``policy_tokens`` when its
    environment reports them (a multi-turn completion's ids also hold the masked tokens of
    user and tool turns), else all of ``ids``."""
    reported = getattr(environment, "policy_tokens", None)
    # 0 is "not counted yet" (a roll-out always has at least one policy token)
    if isinstance(reported, int) and not isinstance(reported, bool) and reported > 0:
        return reported
    return len(ids)


def gym_rewards(
    gym: Gym,
    batch: GymBatch,
    size: int,
    scores: list[float | None],
    reasons: list[str | None],
    budget: Budget,
) -> tuple[list[float | None], dict[str, float]]:
    """The reward column of ``size`` rows (``None`` outside ``batch.rows``, the budget
    penalty applied) and the gym's metrics for this batch."""
    out: list[float | None] = [None] * size
    for i, score, is_over in zip(batch.rows, scores, batch.over, strict=True):
        out[i] = None if score is None else score - (budget.penalty if is_over else 0.0)
    metrics: dict[str, float] = {}
    _log(
        metrics.__setitem__,
        gym,
        batch.samples,
        [scores, [out[i] for i in batch.rows]],
        batch.over,
        reasons,
    )
    return out, metrics


def reward_function(
    gym: Gym,
    *,
    budget: Budget | None = None,
    decode: Callable[[list[int]], str] | None = None,
    stop_ids: Collection[int] | None = None,
) -> RewardFunc:
    """TRL's reward seam for ``gym`` alone (synchronous): rows of other gyms get ``None``.

    ``decode`` turns completion ids back into text; it is needed to truncate an over-budget
    single-message completion before scoring it. ``stop_ids`` are the ids a finished
    completion ends with (EOS, padding): one ending otherwise was cut by TRL's generation
    cap, and is scored as truncated like one cut by the budget. Training uses the async
    composition of :mod:`rl.composition` instead, built from the same pieces.
    """
    budget = budget or Budget()
    stops = set(stop_ids or ())

    def reward(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float | None]:
        batch = batch_samples(
            gym, prompts, completions, kw, budget=budget, decode=decode, stop_ids=stops
        )
        if not batch.rows:
            return [None] * len(prompts)
        scores, reasons = _safe_scores(gym, batch.samples)
        out, metrics = gym_rewards(gym, batch, len(prompts), scores, reasons, budget)
        log_metric = kw.get("log_metric")
        for name, value in metrics.items():
            if log_metric is not None:
                log_metric(name, value)
        return out

    reward.__name__ = gym.name
    return reward


def _safe_scores(gym: Gym, samples: list[Sample]) -> tuple[list[float | None], list[str | None]]:
    try:
        return gated_scores(gym, samples)
    except ScoreCountError:
        raise
    except Exception as exc:  # noqa: BLE001 - a verifier bug is a missing reward, not a dead run
        log.warning("gym %s: verifier failed on %d samples: %s", gym.name, len(samples), exc)
        return [None] * len(samples), [None] * len(samples)


async def asafe_scores(
    gym: Gym, samples: list[Sample]
) -> tuple[list[float | None], list[str | None]]:
    """:func:`agated_scores`, a verifier's exception logged and turned into ``None``s."""
    try:
        return await agated_scores(gym, samples)
    except ScoreCountError:
        raise
    except Exception as exc:  # noqa: BLE001 - a verifier bug is a missing reward, not a dead run
        log.warning("gym %s: verifier failed on %d samples: %s", gym.name, len(samples), exc)
        return [None] * len(samples), [None] * len(samples)


def _log(
    log_metric: Callable[[str, float], None],
    gym: Gym,
    samples: list[Sample],
    scores_and_rewards: list[list[float | None]],
    over: list[bool],
    reasons: list[str | None],
) -> None:
    """Per gym: mean reward (after the budget penalty), pass rate (before it), the share
    of degenerate completions (scored 0 unverified), lengths."""
    scores, rewards = scores_and_rewards
    known = [s for s in scores if s is not None]
    if known:
        final = [r for r in rewards if r is not None]
        log_metric(f"gym/{gym.name}/reward_mean", sum(final) / len(final))
        log_metric(f"gym/{gym.name}/pass_rate", sum(gym.passed(s) for s in known) / len(known))
    log_metric(f"gym/{gym.name}/completion_tokens", sum(s.tokens for s in samples) / len(samples))
    log_metric(f"gym/{gym.name}/over_budget", sum(over) / len(over))
    log_metric(f"gym/{gym.name}/degenerate", sum(r is not None for r in reasons) / len(reasons))


def _as_messages(value: Any, role: str = "assistant") -> Messages:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [m for m in (value or []) if isinstance(m, dict)]


def _payload(column: Any, index: int) -> dict[str, Any]:
    raw = column[index] if column is not None else None
    if isinstance(raw, dict):
        return raw
    try:
        data = json.loads(raw) if raw else {}
    except (TypeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


R = TypeVar("R", bound=BaseModel)


def json_lines(path: str | Path) -> list[tuple[str, Any]]:
    """``(file:line, value)`` for each non-blank line of a JSONL file; ``GymError`` on bad JSON."""
    path = Path(path)
    try:
        lines = read_text(path).splitlines()
    except YamlConfigError as exc:  # missing, a directory, binary: one line naming it
        raise GymError(str(exc)) from exc
    out = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise GymError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
    if not out:
        raise GymError(f"{path}: no rows")
    return out


def read_jsonl(path: str | Path, model: type[R]) -> list[R]:
    """Rows of a JSONL file as ``model``; a bad row is a ``GymError`` naming ``file:line``."""
    rows = []
    for where, value in json_lines(path):
        try:
            rows.append(model.model_validate(value))
        except ValidationError as exc:
            raise GymError(f"{where}: {first_problem(exc, '(row)')}") from exc
    return rows


T = TypeVar("T")


def split_items(items: list[T], split: Split, options: GymOptions) -> list[T]:
    """A seeded shuffle: the first ``eval_count`` items are held out, the next ``count`` train."""
    shuffled = list(items)
    random.Random(options.seed).shuffle(shuffled)
    held = shuffled[: options.eval_count] if len(shuffled) > options.eval_count else []
    if split == "eval":
        return held
    return shuffled[len(held) : len(held) + options.count]
