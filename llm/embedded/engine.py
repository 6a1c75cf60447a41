"""Continuous batching for the embedded model.

Requests wait in a bounded queue; the engine thread decodes up to ``max_batch`` rows
together, one token per row per step. A request joins the running batch as soon as a slot
is free: its prompt is prefilled alone (reusing the keys of any cached prefix, see
:class:`~llm.embedded.kv.PrefixCache`), its first token sampled, and from the next step
on it is decoded with the others (:class:`~llm.embedded.kv.SlotCache`). A row leaves at
the step it finishes, and so does a row whose caller gave up (its future was cancelled,
as the server does when a client disconnects); its slot goes to the next request at
once. Every row keeps its own temperature, top-p, seed, stop strings, token limit and
JSON-schema constraint. Past ``max_queue`` waiting rows :meth:`BatchEngine.admit`
raises :class:`EngineBusy`, which the server answers with a 429.

It knows token ids only; prompts are rendered and replies parsed by the server. The wave
engine it replaced (a batch runs to completion before the next starts) is kept in
:mod:`llm.embedded.wave` as the benchmark's baseline.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import DynamicCache

from llm.embedded.kv import KV, PrefixCache, SlotCache

log = logging.getLogger(__name__)


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None
    """Constrain decoding to JSON valid for this schema (llguidance token masks)."""
    ignore_eos: bool = False
    """Decode all ``max_new_tokens`` even past the end-of-text token (benchmarks do, to
    control output lengths); the server never sets it."""


@dataclass
class Generation:
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


def default_threads() -> int:
    """Decoding threads: half the cores, at least one. The engine shares the machine with
    the rest of a job (Ray workers, sandboxes, the trainer). A decoding step is many small
    operations: with every core, as soon as another process wants one, OpenMP's spinning
    threads wait on each other and a step takes several times longer (bench/overload.py:
    47 against 50 tokens/s on an idle 2-core machine, 37 against 6 beside hogs). A prefill
    is few large operations and keeps every core (1,500 tokens: 2.7 s against 5.0 s idle,
    8.2 s against 5.1 s beside a hog: slower, not collapsed)."""
    return max(1, (os.cpu_count() or 2) // 2)


class EngineBusy(Exception):
    """The queue is full: the caller should come back later (the server answers 429)."""


@dataclass
class EngineStats:
    """What the engine has done since it started (``/health`` shows it)."""

    batches: int = 0
    """Busy periods: times the engine started decoding from idle (rows that overlapped
    share one)."""
    rows_served: int = 0
    tokens_generated: int = 0
    """Every token decoded, for finished and abandoned rows alike."""
    rows_abandoned: int = 0
    """Rows whose caller gave up while they were being decoded."""
    tokens_abandoned: int = 0
    """Tokens decoded for rows whose caller then gave up: work thrown away."""
    rows_dropped_queued: int = 0
    """Rows whose caller gave up before decoding began (no work lost)."""
    rows_refused: int = 0
    """Rows refused because the queue was full."""
    steps: int = 0
    """Decoding steps (one forward pass of every running row)."""
    peak_rows: int = 0
    """The most rows decoded together in one step."""
    prefill_s: float = 0.0
    """Seconds spent computing joining rows' prompts (their first token included)."""
    step_s: float = 0.0
    """Seconds spent in decoding steps, of which:"""
    forward_s: float = 0.0
    """the model's forward passes,"""
    sample_s: float = 0.0
    """choosing tokens from the logits (temperature, top-p, seeds),"""
    constraint_s: float = 0.0
    """JSON-schema token masks (llguidance); the rest is bookkeeping (stop strings,
    finishing rows, moving slots)."""


@dataclass
class _Row:
    request: GenerationRequest
    future: Future[Generation]
    generator: torch.Generator | None
    matcher: Any = None
    tokens: list[int] = field(default_factory=list)
    text: str | None = None
    finish: str | None = None
    position: int = 0
    """The position id of the next token fed to the model."""


class BatchEngine:
    """Owns the model; ``submit`` is thread-safe and returns a future.

    Cancelling a returned future (``asyncio.wrap_future`` does when its task is cancelled)
    takes the row out of the batch at the next decoding step.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int = 16,
        max_queue: int = 256,
        threads: int | None = None,
        prefix_cache_mb: float = 512,
    ):
        self.model = model
        self.threads = threads or default_threads()
        self.prefill_threads = max(self.threads, os.cpu_count() or 1)
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20))
        self.stats = EngineStats()
        self._queue: queue.Queue[_Row | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="embedded-engine", daemon=True)
        eos = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")}
        self._eos = {t for t in eos if isinstance(t, int) and t >= 0}
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # transformers renamed `past_key_values` to `cache` in v5; speak whichever it takes.
        self._cache_kw = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        self._lltokenizer: Any = None
        self._executor: Any = None
        """llguidance's thread pool: every constrained row's mask computed at once."""
        self._waiting: set[Future[Generation]] = set()
        """Futures not yet settled: :meth:`close` cancels them."""
        self._lock = threading.Lock()
        self._rows: list[_Row] = []
        """The running rows, in their :class:`SlotCache` slots' order."""
        self._slots = SlotCache(max_batch)
        self._next = torch.zeros(max_batch, dtype=torch.long)
        """Each running row's last sampled token: the next step's input."""
        self._thread.start()

    @property
    def batches(self) -> int:
        return self.stats.batches

    @property
    def rows_served(self) -> int:
        return self.stats.rows_served

    @property
    def alive(self) -> bool:
        """Whether the engine's decoding thread runs (until :meth:`close` ends it)."""
        return self._thread.is_alive()

    @property
    def running(self) -> int:
        """Rows being decoded."""
        return len(self._rows)

    @property
    def queued(self) -> int:
        """Rows waiting for a batch."""
        return self._queue.qsize()

    def _matcher(self, schema: dict[str, Any]) -> Any:
        import llguidance
        import llguidance.hf

        if self._lltokenizer is None:
            self._lltokenizer = llguidance.hf.from_tokenizer(self.tokenizer)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            json.dumps(schema), defaults={"whitespace_flexible": False}
        )
        matcher = llguidance.LLMatcher(self._lltokenizer, grammar)
        if matcher.is_error():
            raise ValueError(f"unusable JSON schema: {matcher.get_error()}")
        return matcher

    def admit(self, rows: int) -> None:
        """Raise :class:`EngineBusy` unless ``rows`` more rows fit in the queue."""
        if self.queued + rows > self.max_queue:
            self.stats.rows_refused += rows
            raise EngineBusy(
                f"the engine's queue is full ({self.queued} rows waiting, at most {self.max_queue})"
            )

    def submit(self, request: GenerationRequest) -> Future[Generation]:
        future: Future[Generation] = Future()
        generator = None
        if request.seed is not None:
            # torch takes seeds in [0, 2**64); any integer maps there
            generator = torch.Generator().manual_seed(int(request.seed) % 2**64)
        with self._lock:
            self._waiting.add(future)
        future.add_done_callback(self._settled)
        self._queue.put(_Row(request=request, future=future, generator=generator))
        return future

    def _settled(self, future: Future[Generation]) -> None:
        with self._lock:
            self._waiting.discard(future)

    def close(self) -> None:
        """Cancel every request not yet answered and wait for the thread to end.

        Queued work is dropped, not finished: the thread ends after the step it is in. It
        must end before the interpreter does: a thread still inside torch or llguidance
        when Python tears down aborts the process ("terminate called without an active
        exception"), replacing the caller's exit status with SIGABRT's.
        """
        with self._lock:
            waiting = list(self._waiting)
        for future in waiting:
            future.cancel()
        self._queue.put(None)
        self._thread.join()

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        while True:
            if not self._join():
                return
            if not self._rows:
                continue
            try:
                self._step()
            except Exception as exc:
                log.exception("a decoding step failed for %d rows", len(self._rows))
                for row in self._rows:
                    _settle(row.future, exception=exc)
                self._rows = []
                self._slots = SlotCache(self.max_batch)

    def _join(self) -> bool:
        """Move queued requests into free slots, prefilling each; waits when nothing runs.
        False once :meth:`close` asked the thread to end."""
        while len(self._rows) < self.max_batch:
            try:
                row = self._queue.get(block=not self._rows)
            except queue.Empty:
                return True
            if row is None:
                return False
            if not self._start([row]):
                continue
            try:
                self._prefill(row)
            except Exception as exc:
                log.exception("prefill failed")
                _settle(row.future, exception=exc)
        return True

    @torch.inference_mode()
    def _prefill(self, row: _Row) -> None:
        """Compute a joining row's prompt (after its cached prefix), sample its first token
        and give it a slot unless that token already ended it."""
        prompt = row.request.prompt_ids
        cached, prefix = self.prefix_cache.lookup(prompt)
        past = DynamicCache(ddp_cache_data=prefix) if prefix is not None else DynamicCache()
        start = time.perf_counter()
        # thread counts are this thread's own settings: the process keeps its own
        torch.set_num_threads(self.prefill_threads)
        try:
            out = self.model(
                input_ids=torch.tensor([prompt[cached:]], dtype=torch.long),
                position_ids=torch.arange(cached, len(prompt)).unsqueeze(0),
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kw: past},
            )
        finally:
            torch.set_num_threads(self.threads)
        kv: KV = [(layer.keys, layer.values) for layer in getattr(out, self._cache_kw).layers]
        self.prefix_cache.store(prompt, kv, cached)
        if not self._rows:
            self.stats.batches += 1
        self.stats.rows_served += 1
        row.position = len(prompt)
        self._decide([row], out.logits[:, -1, :])
        if row.finish is None:
            self._slots.add(kv)
            self._next[len(self._rows)] = row.tokens[-1]
            self._rows.append(row)
            self.stats.peak_rows = max(self.stats.peak_rows, len(self._rows))
        self.stats.prefill_s += time.perf_counter() - start

    @torch.inference_mode()
    def _step(self) -> None:
        """One token for every running row; finished and abandoned rows leave."""
        rows, slots = self._rows, self._slots
        self.stats.steps += 1
        start = time.perf_counter()
        out = self.model(
            input_ids=self._next[: len(rows)].unsqueeze(1),
            attention_mask=slots.step_mask(),
            position_ids=torch.tensor([[r.position] for r in rows], dtype=torch.long),
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: slots.cache()},
        )
        self.stats.forward_s += time.perf_counter() - start
        slots.advance()
        for row in rows:
            row.position += 1
        self._decide(rows, out.logits[:, -1, :])
        done = [i for i, r in enumerate(rows) if r.finish is not None]
        for i in done:  # the next turn's prompt starts with this one's prompt and reply
            if rows[i].finish != "abandoned":
                kv = slots.row(i)
                seen = (rows[i].request.prompt_ids + rows[i].tokens)[: kv[0][0].shape[2]]
                self.prefix_cache.store(seen, kv, cached=0)
        if done:
            order = slots.remove(done)
            self._rows = [rows[i] for i in order]
        for i, row in enumerate(self._rows):
            self._next[i] = row.tokens[-1]
        self.stats.step_s += time.perf_counter() - start

    def _start(self, rows: list[_Row]) -> list[_Row]:
        """The rows still wanted, each with its JSON matcher; the others are settled."""
        live = []
        for row in rows:
            if row.future.cancelled():
                self.stats.rows_dropped_queued += 1
                continue
            if row.request.json_schema is not None:
                try:
                    row.matcher = self._matcher(row.request.json_schema)
                except Exception as exc:  # noqa: BLE001 - a bad schema fails its own request only
                    _settle(row.future, exception=ValueError(str(exc)))
                    continue
            live.append(row)
        return live

    def _decide(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Sample and take one token for each row; settle the rows that ended."""
        chosen = self._sample(rows, logits)
        self._advance(rows, chosen)
        for row in rows:
            if row.finish is not None:
                self._finish(row, row.finish)

    def _sample(self, rows: list[_Row], logits: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        chosen = torch.empty(len(rows), dtype=torch.long)
        logits = logits.float()
        masked = [i for i, r in enumerate(rows) if r.matcher is not None]
        if masked:
            import llguidance
            import llguidance.torch as llt

            vocab = self._lltokenizer.vocab_size
            bitmask = llt.allocate_token_bitmask(len(masked), vocab)
            if self._executor is None:
                self._executor = llguidance.LLExecutor()
            matchers = [(rows[i].matcher, j) for j, i in enumerate(masked)]
            llt.fill_next_token_bitmask_par(self._executor, matchers, bitmask)
            constrained = logits[masked, :vocab]
            llt.apply_token_bitmask_inplace(constrained, bitmask)
            logits[masked, :vocab] = constrained
        masks_done = time.perf_counter()
        self.stats.constraint_s += masks_done - start
        greedy = [i for i, r in enumerate(rows) if r.request.temperature <= 0]
        if greedy:
            chosen[greedy] = logits[greedy].argmax(-1)
        sampled = [i for i, r in enumerate(rows) if r.request.temperature > 0]
        if sampled:  # one softmax and one sort for all rows; each row draws with its seed
            temperature = torch.tensor([rows[i].request.temperature for i in sampled])
            probs = torch.softmax(logits[sampled] / temperature[:, None], dim=-1)
            top_p = torch.tensor([rows[i].request.top_p for i in sampled])
            nucleus = top_p < 1.0
            if bool(nucleus.any()):
                inside = probs[nucleus]
                sorted_probs, order = torch.sort(inside, descending=True, dim=-1)
                keep = sorted_probs.cumsum(-1) - sorted_probs < top_p[nucleus][:, None]
                kept = torch.zeros_like(inside).scatter_(-1, order, sorted_probs * keep)
                probs[nucleus] = kept / kept.sum(-1, keepdim=True)
            for j, i in enumerate(sampled):
                draw = torch.multinomial(probs[j], 1, generator=rows[i].generator)
                chosen[i] = int(draw)
        self.stats.sample_s += time.perf_counter() - masks_done
        return chosen

    def _advance(self, rows: list[_Row], chosen: torch.Tensor) -> None:
        for i, row in enumerate(rows):
            self.stats.tokens_generated += 1
            if row.future.cancelled():  # the caller gave up: this step's work is its last
                row.finish = "abandoned"
                self.stats.rows_abandoned += 1
                self.stats.tokens_abandoned += len(row.tokens) + 1
                continue
            token = int(chosen[i])
            if token in self._eos and not row.request.ignore_eos:
                row.finish = "stop"
                continue
            row.tokens.append(token)
            if row.matcher is not None:
                row.matcher.consume_token(token)
                if row.matcher.is_stopped():
                    row.finish = "stop"
                    continue
            if row.request.stop:
                cut = stop_cut(self.tokenizer, row.tokens, row.request.stop)
                if cut is not None:
                    row.text, row.finish = cut, "stop"
                    continue
            if len(row.tokens) >= row.request.max_new_tokens:
                row.finish = "length"

    def _finish(self, row: _Row, reason: str) -> None:
        if reason == "abandoned":
            return
        text = row.text
        if text is None:
            text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        _settle(
            row.future,
            result=Generation(
                text=text,
                finish_reason=reason,
                prompt_tokens=len(row.request.prompt_ids),
                completion_tokens=len(row.tokens),
            ),
        )


def stop_cut(tokenizer: Any, tokens: list[int], stops: list[str]) -> str | None:
    """The text of ``tokens`` before the first of ``stops`` once one has appeared, else
    None; called after every new token.

    Earlier tokens held none, so a new one ends in the newest token and lies within the
    last ``len(stop)`` tokens (every token is at least a character, or a byte of one):
    only that tail is decoded every step, the whole text once it matches.
    """
    window = 2 * max(len(s) for s in stops) + 4
    tail = tokenizer.decode(tokens[-window:], skip_special_tokens=False)
    if not any(s in tail for s in stops):
        return None
    text = tokenizer.decode(tokens, skip_special_tokens=False)
    cut = min((text.find(s) for s in stops if s in text), default=-1)
    if cut < 0:  # the tail decoded apart from its context looked like a stop string
        return None
    return str(text[:cut])


def _settle(
    future: Future[Generation],
    *,
    result: Generation | None = None,
    exception: BaseException | None = None,
) -> None:
    """Resolve ``future`` unless its caller cancelled it meanwhile (a race we lose quietly)."""
    try:
        if exception is not None:
            future.set_exception(exception)
        elif result is not None:
            future.set_result(result)
    except InvalidStateError:
        pass
