"""Pins on the TRL 1.16 internals that rl/trl_seam.py wraps, and the rule that nothing
else reads them.

``rl.multiturn`` overrides one private method of ``GRPOTrainer`` (``_tool_call_loop``) and
reaches the batch TRL sets up around it through ``rl.trl_seam``, which also logs our
metrics into TRL's and re-applies its fused log-prob head. A TRL release that moves any of
them would break training quietly (a mask no longer in the loss, a user turn never asked,
a metric dropped), so each pin fails with a message naming what moved and the module to fix.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

FIX = "rl/trl_seam.py (and the override in rl/multiturn.py) rely on it: adapt them to the new TRL"
ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("llm", "tool_registry", "sandboxes", "rubrics", "synth", "rl", "tests", "bench")
PRIVATE = re.compile(
    r"\._(log_metric|metrics|generate_single_turn|get_tool_suffix_ids|env_tools|"
    r"batch_environments|sync_tool_dicts|async_tool_dicts|tokenizer|environment_pool|"
    r"tokenize_prompts|generate_and_score_completions|tool_call_loop)\b"
    r"|__dict__\.pop\(\"forward\"|\btrl\.trainer\b"
)


def source(obj: Any) -> str:
    """Source text with whitespace collapsed, so reformatting alone never fails a pin."""
    return " ".join(inspect.getsource(obj).split())


def params(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


def test_trl_is_the_pinned_minor_version() -> None:
    import trl

    assert trl.__version__.startswith("1.16."), f"TRL {trl.__version__} is not 1.16.*; {FIX}"


def test_tool_call_loop_signature_and_seven_tuple_return() -> None:
    from trl import GRPOTrainer

    assert params(GRPOTrainer._tool_call_loop) == [
        "self", "prompts", "prompt_ids", "completion_ids", "completions", "logprobs", "images",
        "multimodal_fields",
    ], f"GRPOTrainer._tool_call_loop changed its signature; {FIX}"  # fmt: skip
    unpacked = (
        "( tool_mask, completions, completion_ids, logprobs, tool_call_count, "
        "tool_failure_count, tool_images, ) = self._tool_call_loop( prompts, prompt_ids, "
        "completion_ids, completions, logprobs, images, multimodal_fields )"
    )
    assert unpacked in source(GRPOTrainer._generate), (
        f"GRPOTrainer._generate no longer unpacks _tool_call_loop's 7-tuple; {FIX}"
    )


def test_the_loop_runs_only_when_self_tools_is_truthy() -> None:
    from trl import GRPOTrainer

    text = source(GRPOTrainer._generate)
    guard = re.search(r"if self\.tools: \( tool_mask, .*?\) = self\._tool_call_loop\(", text)
    assert guard, f"GRPOTrainer._generate calls _tool_call_loop under another condition; {FIX}"


def test_generation_and_suffix_helpers_keep_their_signatures() -> None:
    from trl import GRPOTrainer
    from trl.chat_template_utils import parse_response
    from trl.trainer.utils import start_event_loop_in_daemon

    assert params(GRPOTrainer._generate_single_turn) == [
        "self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images",
    ], f"GRPOTrainer._generate_single_turn changed; {FIX}"  # fmt: skip
    assert params(GRPOTrainer._get_tool_suffix_ids) == ["self", "tool_messages"], (
        f"GRPOTrainer._get_tool_suffix_ids changed; {FIX}"
    )
    assert params(parse_response) == ["tokenizer", "ids", "prefix", "tools"], (
        f"trl.chat_template_utils.parse_response changed; {FIX}"
    )
    _, loop, ready = start_event_loop_in_daemon(name="pin")
    assert ready.wait(5) and isinstance(loop, asyncio.AbstractEventLoop), (
        f"trl.trainer.utils.start_event_loop_in_daemon changed; {FIX}"
    )
    loop.call_soon_threadsafe(loop.stop)
    assert params(GRPOTrainer._log_metric) == ["self", "name", "value"], (
        f"GRPOTrainer._log_metric changed; {FIX}"
    )


def test_the_metric_stores_and_the_fused_head_are_where_the_seam_reaches_them() -> None:
    from trl import GRPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    init = source(GRPOTrainer.__init__)
    assert "self._metrics = " in init and "self._pending_metrics" in source(
        GRPOTrainer._log_metric
    ), f"GRPOTrainer keeps its metrics elsewhere; {FIX}"
    assert {"model", "temperature", "cast_lm_head_to_fp32", "outputs"} <= set(
        params(add_fused_lm_head)
    ), f"trl.trainer.utils.add_fused_lm_head changed; {FIX}"
    assert "add_fused_lm_head(" in init, f"GRPOTrainer no longer patches a fused head; {FIX}"


def test_no_module_but_the_seam_reads_trl_internals() -> None:
    """Every private name of TRL's that Summit, its tests and its benchmarks use is read in
    rl/trl_seam.py, so a TRL upgrade is one module's work (the pins here read them too, and
    rl/multiturn.py defines the one method it overrides)."""
    found = []
    exempt = {ROOT / "rl" / "trl_seam.py", Path(__file__).resolve()}
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path in exempt:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if PRIVATE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "TRL internals outside rl/trl_seam.py:\n" + "\n".join(found)


def test_the_scan_sees_a_private_read() -> None:
    assert PRIVATE.search("trainer._log_metric('x', 1.0)")
    assert PRIVATE.search("from trl.trainer.utils import add_fused_lm_head")
    assert not PRIVATE.search("from trl import GRPOTrainer")


def test_the_tool_mask_multiplies_the_loss_mask() -> None:
    from trl import GRPOTrainer

    scored = source(GRPOTrainer._generate_and_score_completions)
    assert "loss_mask = completion_mask if tool_mask is None else completion_mask * tool_mask" in (
        scored
    ), f"the tool mask no longer enters the loss mask's token count; {FIX}"
    assert 'output["tool_mask"] = tool_mask' in scored, f"output key tool_mask moved; {FIX}"
    assert 'completion_mask * inputs["tool_mask"]' in source(GRPOTrainer._compute_loss), (
        f"GRPOTrainer._compute_loss no longer multiplies the tool mask into the loss; {FIX}"
    )
    assert "self._pending_metrics" in scored, f"log_metric values are no longer flushed; {FIX}"


def test_batch_attributes_the_loop_reads_are_set_where_it_expects() -> None:
    from trl import GRPOTrainer

    init = source(GRPOTrainer.__init__)
    for name in (
        "self._env_tools", "self._environment_pool", "self.eos_token_ids", "self._tokenizer",
        "self.chat_template", "self.chat_template_kwargs", "self.max_completion_length",
        "self.max_tool_calling_iterations", "self.environment_factories",
    ):  # fmt: skip
        assert f"{name} =" in init, f"GRPOTrainer.__init__ no longer sets {name}; {FIX}"
    scored = source(GRPOTrainer._generate_and_score_completions)
    for name in (
        "self._batch_environments",
        "self.environments",
        "self._sync_tool_dicts",
        "self._async_tool_dicts",
    ):
        assert f"{name} =" in scored, f"{name} is no longer set per batch; {FIX}"
    assert "observation = environment.reset(**reset_kwargs)" in scored, (
        f"reset is no longer called synchronously before the roll-out; {FIX}"
    )
    assert 'member_name not in ("reset", "get_reward")' in scored, (
        f"TRL lists an environment's tools differently (the hooks must stay off them); {FIX}"
    )


class HookOnly:
    """An environment with no tool: only the hooks of a multi-turn conversation."""

    def reset(self, **row: Any) -> None:
        return None

    async def user_turn(self, conversation: list[dict[str, Any]]) -> str | None:
        return None

    async def finish(self) -> None:
        return None


ORDER: list[tuple[str, frozenset[str]]] = []


def sync_first(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float]:
    ORDER.append(("sync_first", frozenset(kw)))
    return [0.0] * len(prompts)


async def async_middle(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float]:
    await asyncio.sleep(0)
    ORDER.append(("async_middle", frozenset(kw)))
    return [0.0] * len(prompts)


def sync_last(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float]:
    ORDER.append(("sync_last", frozenset(kw)))
    return [0.0] * len(prompts)


@pytest.fixture(scope="module")
def trainer(module_dir: Path) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from llm.embedded.model import ensure_converted, load_tokenizer
    from rl.multiturn import with_multiturn

    path = ensure_converted()
    args = GRPOConfig(
        output_dir=str(module_dir),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        report_to=[],
        use_cpu=True,
    )
    return with_multiturn(GRPOTrainer)(
        model=str(path),
        reward_funcs=[sync_first, async_middle, sync_last],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}]}] * 2),
        processing_class=load_tokenizer(Path(path)),
        environment_factory=HookOnly,
    )


def test_hooks_count_as_tools_so_a_tool_less_conversation_reaches_the_loop(trainer: Any) -> None:
    names = {getattr(t, "__name__", "") for t in trainer.tools}
    assert names == {"user_turn", "finish"}, (
        f"TRL no longer lists an environment's public methods in self.tools; {FIX}"
    )
    from rl import trl_seam

    assert trl_seam.environment_tools(trainer)[None] == [], (
        "rl.multiturn must keep its hooks off the schemas"
    )


def test_sync_rewards_run_in_order_then_async_ones_with_the_kwargs_we_read(trainer: Any) -> None:
    ORDER.clear()
    trainer.environments = [HookOnly(), HookOnly()]
    prompts = [[{"role": "user", "content": "hi"}]] * 2
    completions = [[{"role": "assistant", "content": "hello"}]] * 2
    trainer._calculate_rewards([{"prompt": p} for p in prompts], prompts, completions, [[1], [1]])
    assert [name for name, _ in ORDER] == ["sync_first", "sync_last", "async_middle"], (
        f"TRL changed the order it calls reward functions in; {FIX} (and rl's reward composition)"
    )
    wanted = {"environments", "log_metric", "log_extra", "completion_ids", "trainer_state"}
    for name, kwargs in ORDER:
        assert wanted <= kwargs, f"{name} did not get {sorted(wanted - kwargs)}; {FIX}"
