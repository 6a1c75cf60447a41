"""Critic back ends for the self-critique reward, behind one small interface.

A back end opens a session (``connect``) that hands out a comparator per group — for the
group's domain and rubric ids — and can be refined on verified pairs (``refine``), which
bumps its ``version`` so cached verdicts of the old critic are not reused.

* :class:`EndpointCritic` — any OpenAI-compatible endpoint (K2 on Moonshot, OpenRouter,
  vLLM/SGLang; the embedded server; the scripted test server). It cannot be trained, so
  refinement is in context: verified pairs go into an :class:`ExemplarBank` and the
  closest-domain ones are shown to the critic before each comparison. Given the run's
  :class:`~rl.clients.ClientPool` it talks through one long-lived client for the whole
  run (the pool's ``critic`` client on the running loop); alone, it opens a client per
  session.
* :class:`rl.critique.local.LocalCritic` — a Hugging Face model in process, refined by a
  TRL DPO round.

Not here: ranking and rewards (``rl.critique.reward``).
"""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import jinja2

from llm import ChatClient, Endpoint
from rl.clients import ClientPool
from rl.critique.agreement import VerifiedPair
from rubrics.critic import Comparator, LLMCritic
from rubrics.loader import RubricSet
from rubrics.render import defuse, nonce

ComparatorFor = Callable[[str, list[str]], Comparator]
"""``(domain, rubric ids) -> comparator`` for one group."""

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
"""The critics' prompt templates (``*.jinja`` beside this module)."""
_TEMPLATE = TEMPLATES.get_template("exemplars.jinja")


class CriticBackend(Protocol):
    name: str
    version: int
    """Bumped by every refinement that changed the critic."""
    rubric_set: RubricSet | None
    """Where rubric ids are looked up; the reward sets it to its own when unset."""

    def connect(self) -> contextlib.AbstractAsyncContextManager[ComparatorFor]: ...

    def refine(self, pairs: list[VerifiedPair]) -> None: ...


class ExemplarBank:
    """Verified comparisons kept per domain (newest ``per_domain``), shown as exemplars.

    ``select(domain, k)`` takes the newest of the domain first and fills up from other
    domains; each exemplar's A/B order is drawn from a seeded coin so the bank never
    teaches "A wins".
    """

    def __init__(self, per_domain: int = 32, seed: int = 0) -> None:
        self.per_domain = per_domain
        self.seed = seed
        self._pairs: dict[str, deque[VerifiedPair]] = defaultdict(lambda: deque(maxlen=per_domain))

    def __len__(self) -> int:
        return sum(len(d) for d in self._pairs.values())

    def add(self, pairs: list[VerifiedPair]) -> int:
        """Add pairs not already held; returns how many were new."""
        added = 0
        for pair in pairs:
            if pair not in self._pairs[pair.domain]:
                self._pairs[pair.domain].append(pair)
                added += 1
        return added

    def select(self, domain: str, k: int) -> list[VerifiedPair]:
        own = list(reversed(self._pairs.get(domain, ())))[:k]
        others = [p for d, q in self._pairs.items() if d != domain for p in reversed(q)]
        return own + others[: k - len(own)]

    def render(self, domain: str, k: int) -> str:
        """The exemplar block for ``domain`` (empty when the bank holds nothing)."""
        chosen = self.select(domain, k)
        if not chosen:
            return ""
        coin = random.Random(f"{self.seed}:{domain}:{len(self)}")
        shown = []
        for p in chosen:
            better_first = coin.random() < 0.5
            a, b = (p.better, p.worse) if better_first else (p.worse, p.better)
            shown.append(
                {
                    "prompt": defuse(p.prompt),
                    "a": defuse(a),
                    "b": defuse(b),
                    "winner": "A" if better_first else "B",
                }
            )
        return _TEMPLATE.render(exemplars=shown, nonce=nonce(*(p.prompt for p in chosen)))


class ExemplarCritic(LLMCritic):
    """:class:`LLMCritic` whose prompt opens with exemplars from a bank."""

    def __init__(
        self,
        client: ChatClient,
        rubrics: list[str],
        exemplars: str,
        rubric_set: RubricSet | None = None,
    ) -> None:
        super().__init__(client, rubrics, rubric_set=rubric_set)
        self.exemplars = exemplars

    def prompt(self, prompt: str, first: str, second: str) -> str:
        return self.exemplars + super().prompt(prompt, first, second)


class EndpointCritic:
    """A critic on an OpenAI-compatible endpoint, refined in context."""

    def __init__(
        self,
        endpoint: Endpoint | Callable[[], Endpoint],
        *,
        exemplars: int = 0,
        bank: ExemplarBank | None = None,
        rubric_set: RubricSet | None = None,
        clients: ClientPool | None = None,
    ) -> None:
        self._endpoint = endpoint
        self.clients = clients
        """The run's shared clients; unset: a client per :meth:`connect`."""
        self.rubric_set = rubric_set
        """Where rubric ids are looked up; unset: the built-in library."""
        self.exemplars = exemplars
        """Exemplars shown per comparison; 0 turns in-context refinement off."""
        self.bank = bank or ExemplarBank()
        self.version = 0
        self.name = "endpoint"

    def endpoint(self) -> Endpoint:
        if callable(self._endpoint):
            self._endpoint = self._endpoint()
        return self._endpoint

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[ComparatorFor]:
        if self.clients is not None:
            yield self._comparators(self.clients.get("critic", self.endpoint))
            return
        async with ChatClient(self.endpoint()) as client:
            yield self._comparators(client)

    def _comparators(self, client: ChatClient) -> ComparatorFor:
        def comparator(domain: str, rubrics: list[str]) -> Comparator:
            block = self.bank.render(domain, self.exemplars) if self.exemplars else ""
            return ExemplarCritic(client, rubrics, block, self.rubric_set)

        return comparator

    def refine(self, pairs: list[VerifiedPair]) -> None:
        if self.exemplars and self.bank.add(pairs):
            self.version += 1
