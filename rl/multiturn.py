"""Multi-turn roll-outs in TRL's ``GRPOTrainer``: tools and the simulated user, all rows at once.

TRL 1.16 plays tool calls (``environment_factory``) but has no place for a user turn: its
``_tool_call_loop`` ends a row as soon as the policy answers without a tool call. The
mixin here overrides exactly that one method, keeping its signature and its 7-tuple return,
so ``_generate``, ``_generate_and_score_completions`` and ``_compute_loss`` stay TRL's own
(what we rely on is pinned in ``tests/rl/test_trl_seam.py``). After each policy turn every
live row either runs its tool calls or, when the turn had none and its environment has a
``user_turn`` hook, asks the simulated user; all rows' tool calls and user turns of a round
run concurrently on one persistent event loop (:func:`rollout_loop`), then ONE batched
``_generate_single_turn`` plays the policy's next turn for every row still live.

Masks: the returned ``tool_mask`` is 1 exactly on tokens the policy generated and 0 on the
tokens of tool results and user turns (the block plus the next assistant header, the
template glue after the policy's end-of-turn included); their logprobs are 0.0. TRL
multiplies ``tool_mask`` into the loss mask, so only the policy's own tokens carry loss.

Faults: a malformed call, an unknown tool or arguments that do not fit its signature are the
policy's fault and come back to it as an ``error: ...`` tool message. A tool or user hook that
raises or outlives its timeout is the environment's fault: that row ends, ``env.failure``
holds one line, and ``agentic/failures`` counts it; the batch goes on.

Not here: images (multimodal roll-outs keep TRL's own loop), and the multi-process vLLM
server mode's collective generation, which needs every rank to generate equally often
(TRL's own loop has the same limit).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rl import trl_seam

log = logging.getLogger(__name__)

T = TypeVar("T")

HOOKS = frozenset({"user_turn", "finish"})
"""Environment methods the loop calls itself; they are never shown to the policy as tools."""

_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()
_TOOL_THREADS = 64
"""Threads for sync tools (``asyncio.to_thread``): the default pool (cores + 4) would cap
how many rows' sync tools run at once on a small machine."""


@dataclass(frozen=True)
class RolloutLimits:
    """Per-call timeouts: a hook past its limit is an environment failure, never a hung step."""

    tool_timeout_s: float = 60.0
    """One tool call (an MCP call, a sandbox run, a simulated tool's model call)."""
    user_timeout_s: float = 120.0
    """One simulated-user turn (a model call, with the client's own retries inside)."""
    finish_timeout_s: float = 60.0
    """One environment's ``finish`` (final state, stopping its processes)."""


def rollout_loop() -> asyncio.AbstractEventLoop:
    """The one persistent event loop of every roll-out's async work, on a daemon thread.

    Tool calls, user turns and ``finish`` of all episodes run here, so clients and MCP
    streams an environment opens on first use stay valid for the whole run.
    """
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            from concurrent.futures import ThreadPoolExecutor

            _, loop, ready = trl_seam.start_event_loop_in_daemon(name="summit-rollouts")
            ready.wait()
            pool = ThreadPoolExecutor(_TOOL_THREADS, thread_name_prefix="summit-tool")
            loop.call_soon_threadsafe(loop.set_default_executor, pool)
            _LOOP = loop
        return _LOOP


def run_in_rollout_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on :func:`rollout_loop` and wait for its result (from any other thread)."""
    return asyncio.run_coroutine_threadsafe(coro, rollout_loop()).result()


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters (failure reasons are log lines)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's parsed messages as OpenAI chat messages: tool calls get ids and JSON-string
    arguments, tool results the ``tool_call_id`` of the call they answer (in call order)."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    for turn, message in enumerate(messages):
        message = {k: v for k, v in message.items() if v is not None}
        if message.get("role") == "assistant" and message.get("tool_calls"):
            calls: list[dict[str, Any]] = []
            for k, call in enumerate(message["tool_calls"]):
                function = dict(call.get("function") or {})
                args = function.get("arguments", {})
                function["arguments"] = args if isinstance(args, str) else json.dumps(args)
                calls.append({"id": f"call_{turn}_{k}", "type": "function", "function": function})
            message["tool_calls"] = calls
            message.setdefault("content", "")
            pending = [str(c["id"]) for c in calls]
        elif message.get("role") == "tool" and pending:
            message["tool_call_id"] = pending.pop(0)
        out.append(message)
    return out


@dataclass
class _Step:
    """What one row's external step produced."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    """Tool results or one user message to append; empty: the row ends."""
    calls: int = 0
    errors: int = 0
    """Tool calls answered with an error (the policy's fault, or the environment's)."""
    user_turn: bool = False
    failure: str | None = None
    """Why the environment failed, when it did."""


@dataclass
class _Batch:
    """One call's roll-outs: TRL's lists (changed in place) and what the loop counts."""

    prompts: list[Any]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    completions: list[list[dict[str, Any]]]
    logprobs: list[list[float]] | None
    envs: list[Any]
    tool_mask: list[list[int]] = field(default_factory=list)
    calls: int = 0
    errors: int = 0
    failures: int = 0
    budget_stops: int = 0
    user_turns: list[int] = field(default_factory=list)
    unparsed: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict)
    """Policy turns generated but not parsed yet: row -> (ids, the context before them)."""
    tool_rounds: list[int] = field(default_factory=list)
    """Tool rounds since each row's last user turn (TRL's ``max_tool_calling_iterations``)."""

    def __post_init__(self) -> None:
        n = len(self.prompt_ids)
        self.tool_mask = [[1] * len(ids) for ids in self.completion_ids]
        self.user_turns, self.tool_rounds = [0] * n, [0] * n


class MultiTurnMixin:
    """Put before a ``GRPOTrainer`` (sub)class: see :func:`with_multiturn`."""

    rollout_limits: RolloutLimits = RolloutLimits()

    # What this mixin reads of TRL's GRPOTrainer's public attributes; the private ones go
    # through rl.trl_seam (both pinned by tests/rl/test_trl_seam.py).
    environments: Any
    environment_factories: Any
    eos_token_ids: Any
    max_completion_length: Any
    max_tool_calling_iterations: Any
    tools: Any
    processing_class: Any
    chat_template: Any
    chat_template_kwargs: Any
    model: Any
    use_vllm: Any
    vllm_generation: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # TRL lists every public method as a tool; the hooks are ours, not the policy's. They
        # stay in ``self.tools`` (only its truthiness matters there): an environment whose only
        # capability is the user still reaches this loop.
        listed = trl_seam.environment_tools(self)
        for name, tools in listed.items():
            listed[name] = [t for t in tools if _name(t) not in HOOKS]

    # ------------------------------------------------------------------ TRL's seam
    # the override of trl_seam.TOOL_CALL_LOOP (a method has to be defined by its name)
    def _tool_call_loop(
        self,
        prompts: list[Any],
        prompt_ids: list[list[int]],
        completion_ids: list[list[int]],
        completions: list[list[dict[str, Any]]],
        logprobs: list[list[float]] | None,
        images: Any,
        multimodal_fields: Any,
    ) -> tuple[Any, ...]:
        """TRL's tool loop, with user turns and every row's external step concurrent."""
        if images is not None:
            raise ValueError("multi-turn roll-outs (rl.multiturn) do not support images")
        n = len(prompt_ids)
        envs = [self.environments[i] if self.environments else None for i in range(n)]
        for env in envs:
            if env is not None and not _owns_failure(env):
                env.failure = None  # a pooled env without hooks carries no failure across batches
        b = _Batch(prompts, prompt_ids, completion_ids, completions, logprobs, envs)
        live = list(range(n))
        while live:
            live = run_in_rollout_loop(self._round(b, live))
            if live:
                self._policy_turn(b, live)
        run_in_rollout_loop(self._finish_all(b))
        for env, mask in zip(envs, b.tool_mask, strict=True):
            if env is not None:
                env.policy_tokens = sum(mask)
        self._log_rollout_metrics(b)
        no_images: list[list[Any]] = [[] for _ in range(n)]
        counts = (b.calls, b.errors)
        return b.tool_mask, b.completions, b.completion_ids, b.logprobs, *counts, no_images

    # ------------------------------------------------------------------ one round
    def _goes_on(self, b: _Batch, i: int) -> bool:
        """Does row ``i`` need an external step after its latest policy turn?"""
        env = b.envs[i]
        if getattr(env, "failure", None):
            return False
        last = b.completions[i][-1] if b.completions[i] else {}
        if last.get("tool_calls"):
            return bool(b.tool_rounds[i] < self.max_tool_calling_iterations)
        ids = b.completion_ids[i]
        ended = bool(ids) and ids[-1] in set(self.eos_token_ids)
        return ended and callable(getattr(env, "user_turn", None))

    async def _round(self, b: _Batch, rows: list[int]) -> list[int]:
        """Every row's external step, concurrently; the rows whose policy plays next.

        Each row's CPU work (parsing its last turn, rendering what comes back) runs in its
        own coroutine, so it overlaps the other rows' model and tool calls in flight.
        """
        played = await asyncio.gather(*(self._row_round(b, i) for i in rows))
        return [i for i, goes_on in zip(rows, played, strict=True) if goes_on]

    async def _row_round(self, b: _Batch, i: int) -> bool:
        if i in b.unparsed:
            ids, context = b.unparsed.pop(i)
            tools = self._row_tools(i)
            b.completions[i].append(
                trl_seam.parse_response(trl_seam.tokenizer(self), ids, prefix=context, tools=tools)
            )
        if not self._goes_on(b, i):
            return False
        step = await self._external_step(i, b.envs[i], b.prompts[i] + b.completions[i])
        return self._take_step(b, i, step)

    async def _external_step(self, i: int, env: Any, conversation: list[dict[str, Any]]) -> _Step:
        calls = conversation[-1].get("tool_calls")
        step = await (self._run_tools(i, calls) if calls else self._ask_user(env, conversation))
        if step.failure is None and getattr(env, "failure", None):
            step.failure = str(env.failure)  # the environment noticed its own failure
        return step

    async def _run_tools(self, i: int, calls: list[dict[str, Any]]) -> _Step:
        """The row's calls in the order the policy wrote them (they may act on one state)."""
        tools = {
            name: fn
            for name, fn in trl_seam.row_tool_functions(self, i).items()
            if name not in HOOKS
        }
        step = _Step(calls=len(calls))
        for call in calls:
            name, content, error = await self._run_tool(tools, call)
            step.messages.append({"role": "tool", "name": name, "content": content})
            step.errors += error is not None
            if error is not None and error.startswith("failure: "):
                step.failure = error.removeprefix("failure: ")
                break
        return step

    async def _run_tool(
        self, tools: dict[str, Any], call: dict[str, Any]
    ) -> tuple[str, Any, str | None]:
        """``(name, content, None)``; an ``error: ...`` content and its reason for the policy's
        faults; ``failure: ...`` as the reason when the environment failed."""
        function = call.get("function") or {}
        name = str(function.get("name") or call.get("name") or "unknown")
        args = function.get("arguments")
        tool = tools.get(name)
        problem = None
        if call.get("type", "function") != "function":
            problem = f"unsupported tool call type {call.get('type')!r}"
        elif tool is None:
            problem = f"tool {name} not found"
        elif not isinstance(args, dict):
            problem = "arguments must be a JSON object"
        else:
            try:
                inspect.signature(tool).bind(**args)
            except TypeError as exc:
                problem = f"bad arguments for {name}: {exc}"
        if problem is not None or tool is None or not isinstance(args, dict):
            return name, f"error: {problem}", str(problem)
        limit = self.rollout_limits.tool_timeout_s
        run = tool(**args) if inspect.iscoroutinefunction(tool) else asyncio.to_thread(tool, **args)
        try:
            result = await asyncio.wait_for(run, limit)
        except TimeoutError:
            reason = f"tool {name} timed out after {limit:g} s"
        except Exception as exc:  # noqa: BLE001 - an environment fault is data: the row ends
            reason = f"tool {name} raised {type(exc).__name__}: {exc}"
        else:
            return name, result if isinstance(result, list) else str(result), None
        return name, f"error: {one_line(reason)}", f"failure: {one_line(reason)}"

    async def _ask_user(self, env: Any, conversation: list[dict[str, Any]]) -> _Step:
        """The simulated user's next message; no message ends the row."""
        hook = getattr(env, "user_turn", None)
        if hook is None:
            return _Step()
        limit = self.rollout_limits.user_timeout_s
        try:
            text = await asyncio.wait_for(hook(openai_messages(conversation)), limit)
        except TimeoutError:
            return _Step(failure=f"user turn timed out after {limit:g} s")
        except Exception as exc:  # noqa: BLE001 - a failed simulator is data: the row ends
            return _Step(failure=one_line(f"user turn raised {type(exc).__name__}: {exc}"))
        if text is None:
            return _Step()
        if not isinstance(text, str) or not text.strip():
            return _Step(failure=f"user turn returned {text!r:.80}, not a message")
        return _Step(messages=[{"role": "user", "content": text}], user_turn=True)

    def _take_step(self, b: _Batch, i: int, step: _Step) -> bool:
        """Append row ``i``'s step (masked) if it fits; True when the policy plays next."""
        b.calls += step.calls
        b.errors += step.errors
        if step.failure is not None:
            self._fail(b, b.envs[i], step.failure)
            return False
        if not step.messages:
            return False
        if step.user_turn:
            suffix = self._get_user_suffix_ids(step.messages[0])
        else:
            suffix = trl_seam.tool_suffix_ids(self, step.messages)
        used = len(b.completion_ids[i]) + len(suffix)
        if (
            used >= self.max_completion_length
            or len(b.prompt_ids[i]) + used >= self._max_model_len()
        ):
            b.budget_stops += 1  # no room left for a policy turn: the row ends on its last one
            return False
        b.completions[i].extend(step.messages)
        b.completion_ids[i] = b.completion_ids[i] + suffix
        b.tool_mask[i] += [0] * len(suffix)
        if b.logprobs is not None:
            b.logprobs[i] += [0.0] * len(suffix)
        if step.user_turn:
            b.user_turns[i] += 1
            b.tool_rounds[i] = 0
        else:
            b.tool_rounds[i] += 1
        return True

    def _policy_turn(self, b: _Batch, rows: list[int]) -> None:
        """One batched generation for every row in ``rows``, cut to each row's budget."""
        contexts = [b.prompt_ids[i] + b.completion_ids[i] for i in rows]
        new_ids, new_logprobs = trl_seam.generate_turn(self, contexts)
        for k, i in enumerate(rows):
            room = self.max_completion_length - len(b.completion_ids[i])
            ids = list(new_ids[k][:room])
            b.completion_ids[i] = b.completion_ids[i] + ids
            b.tool_mask[i] += [1] * len(ids)
            if b.logprobs is not None and new_logprobs is not None:
                b.logprobs[i] += list(new_logprobs[k][:room])
            if ids:  # parsed at the start of the next round, in the row's own coroutine
                b.unparsed[i] = (ids, contexts[k])

    async def _finish_all(self, b: _Batch) -> None:
        """Every environment's ``finish``, concurrently, once per roll-out."""

        async def finish(env: Any) -> None:
            hook = getattr(env, "finish", None)
            if hook is None:
                return
            failed = getattr(env, "failure", None)
            limit = self.rollout_limits.finish_timeout_s
            try:
                await asyncio.wait_for(hook(), limit)
            except TimeoutError:
                self._fail(b, env, f"finish timed out after {limit:g} s")
            except Exception as exc:  # noqa: BLE001 - the row's reward becomes None, not a crash
                self._fail(b, env, f"finish raised {type(exc).__name__}: {exc}")
            else:
                if not failed and getattr(env, "failure", None):
                    b.failures += 1  # the environment recorded its own failure while finishing

        await asyncio.gather(*(finish(env) for env in b.envs if env is not None))

    # ------------------------------------------------------------------ helpers
    def _fail(self, b: _Batch, env: Any, reason: str) -> None:
        b.failures += 1
        if env is not None and not getattr(env, "failure", None):
            env.failure = one_line(reason)
        log.warning("roll-out environment failed: %s", one_line(reason))

    def _get_user_suffix_ids(self, message: dict[str, Any]) -> list[int]:
        """Token ids of a user turn plus the next assistant header, rendered like TRL's
        ``_get_tool_suffix_ids``: a dummy conversation with and without it, cut at EOS."""
        dummy = [{"role": "user", "content": "dummy"}, {"role": "assistant", "content": "dummy"}]
        kwargs = {
            "tokenize": True,
            "chat_template": self.chat_template,
            "return_dict": False,
            **self.chat_template_kwargs,
        }
        render = self.processing_class.apply_chat_template
        prefix = list(render(dummy, add_generation_prompt=False, **kwargs))
        full = list(render([*dummy, message], add_generation_prompt=True, **kwargs))
        ends = [k for k, t in enumerate(prefix) if t == trl_seam.tokenizer(self).eos_token_id]
        if ends:
            prefix = prefix[: ends[-1] + 1]
        if full[: len(prefix)] != prefix:
            raise ValueError("user turn suffix: the EOS-trimmed prefix does not start the full ids")
        return full[len(prefix) :]

    def _row_tools(self, i: int) -> Any:
        return trl_seam.row_tool_schemas(self, i)

    def _max_model_len(self) -> int:
        """The generation backend's context ceiling, read as TRL's own loop reads it."""
        if self.use_vllm and getattr(self, "vllm_mode", None) == "colocate":
            return int(self.vllm_generation.llm.llm_engine.model_config.max_model_len)
        config = self.model.config
        config = getattr(config, "text_config", None) or config
        return int(getattr(config, "max_position_embeddings", None) or 1 << 30)

    def _log_rollout_metrics(self, b: _Batch) -> None:
        rows = max(len(b.prompt_ids), 1)
        trl_seam.log_metric(self, "agentic/user_turns", sum(b.user_turns) / rows)
        trl_seam.log_metric(self, "agentic/tool_calls", b.calls / rows)
        trl_seam.log_metric(self, "agentic/failures", float(b.failures))
        trl_seam.log_metric(self, "agentic/budget_stops", float(b.budget_stops))


def _name(tool: Any) -> str:
    return str(getattr(tool, "__name__", ""))


def _owns_failure(env: Any) -> bool:
    """Environments with hooks own ``failure`` (they clear it in ``reset``); others do not."""
    return any(hasattr(type(env), hook) for hook in HOOKS)  # a method or a descriptor


_CLASSES: dict[type[Any], type[Any]] = {}


def with_multiturn(trainer_cls: type[Any]) -> type[Any]:
    """``trainer_cls`` (``GRPOTrainer`` or a subclass such as ``rl.ptx.PtxGRPOTrainer``) with
    multi-turn roll-outs; one class per base, so repeated calls return the same type."""
    if trainer_cls not in _CLASSES:
        _CLASSES[trainer_cls] = type(
            f"MultiTurn{trainer_cls.__name__}",
            (MultiTurnMixin, trainer_cls),
            {"__doc__": f"{trainer_cls.__name__} whose roll-outs include user turns."},
        )
    return _CLASSES[trainer_cls]
