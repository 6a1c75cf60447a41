"""GRPO on the real embedded policy with real TRL: a two-step run mixing gyms (with a tool-use
environment through environment_factory), resume from a checkpoint, the PTX loss, the
temperature decay and pass@k evaluation of a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rl.callbacks import temperature_at
from rl.config import TemperatureConfig, TrainConfig
from rl.evaluate import pass_at_k

ROOT = Path(__file__).resolve().parents[2]
BANK = str(ROOT / "configs" / "grpo" / "tasks" / "bank.jsonl")
SMALL_MATH = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


def config(tmp: Path, gyms: list[dict[str, Any]], **fields: Any) -> TrainConfig:
    grpo = {
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "num_generations": 2,
        "max_completion_length": 16,
        "save_steps": 1,
        "learning_rate": 1e-4,
        **fields.pop("grpo", {}),
    }
    return TrainConfig.model_validate(
        {
            "name": "test",
            "output_dir": str(tmp),
            "gyms": gyms,
            "grpo": grpo,
            "logging": {"progress": False, "report_to": ["tensorboard"]},
            **fields,
        }
    )


MATH = {"gym": "math", "options": {"count": 4, "eval_count": 2, "dataset_config": SMALL_MATH}}


@pytest.fixture(scope="module")
def mixed_run(module_dir: Path) -> dict[str, Any]:
    from rl.trainer import Services, build

    out = module_dir
    cfg = config(
        out,
        [
            MATH,
            {"gym": "ifeval", "max_tokens": 8, "options": {"count": 4, "eval_count": 1}},
            {"gym": "tool_use", "options": {"path": BANK, "count": 3, "eval_count": 1}},
        ],
        dataset_size=8,
        temperature={"start": 1.3, "end": 0.7},
    )
    with Services(cfg) as services:
        trainer = build(cfg, services)
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not p.detach().equal(before[n])]
    return {"trainer": trainer, "config": cfg, "out": out, "changed": changed}


@pytest.mark.integration
def test_two_steps_mixing_gyms_train_log_per_gym_metrics_and_checkpoint(mixed_run) -> None:
    trainer, out = mixed_run["trainer"], mixed_run["out"]
    assert trainer.state.global_step == 2
    # the policy moves exactly when a group's rewards differed (else every advantage is 0);
    # tests/rl/test_multiturn.py has the step whose rewards are made to differ
    varied = any(e.get("frac_reward_zero_std", 1.0) < 1.0 for e in trainer.state.log_history)
    assert bool(mixed_run["changed"]) == varied, (varied, mixed_run["changed"][:3])
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"rewards/math/mean", "rewards/ifeval/mean", "rewards/tool_use/mean"} <= logged
    for gym in ("math", "ifeval", "tool_use"):
        assert any(k.startswith(f"gym/{gym}/") for k in logged), gym
    assert {"gym/ifeval/over_budget", "temperature"} <= logged
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    assert list((out / "runs").glob("*/events.out.tfevents.*")), "TensorBoard events written"


@pytest.mark.integration
def test_temperature_decays_from_start_to_end_in_the_sampler(mixed_run) -> None:
    trainer = mixed_run["trainer"]
    temps = [e["temperature"] for e in trainer.state.log_history if "loss" in e]
    assert temps[0] == pytest.approx(1.3)
    assert trainer.temperature == pytest.approx(1.0)  # step 1 of 2: halfway
    assert trainer.generation_config.temperature == pytest.approx(trainer.temperature)


@pytest.mark.integration
def test_tool_use_rows_play_in_real_executable_environments_through_trl(mixed_run) -> None:
    from rl import trl_seam
    from rl.environments import AgenticEnvironment
    from rl.gyms import build_gym
    from rl.gyms.base import reward_function
    from rl.multiturn import run_in_rollout_loop

    trainer = mixed_run["trainer"]
    pools = trl_seam.environment_pool(trainer)
    keys = [k for k in pools if k.startswith("executable:bank:")]
    assert len(keys) == 1, list(pools)
    pool = pools[keys[0]]
    assert pool and all(isinstance(env, AgenticEnvironment) for env in pool)
    assert "transfer" in {t.__name__ for t in trl_seam.environment_tools(trainer)[keys[0]]}
    env = pool[0]
    task = env.task
    # Call the tool the way the roll-out loop does: on its loop, keyword arguments.
    expected = task["checks"]["expected_state"]["accounts"]["savings-2"]["balance"]

    async def act() -> None:
        await env.transfer(source="checking-1", destination="savings-2", amount=expected - 100.0)
        await env.finish()

    run_in_rollout_loop(act())
    gym = build_gym("tool_use", {"path": BANK})
    reward = reward_function(gym)
    payload = json.dumps({"task": task, "toolset": "bank"})
    rewards = reward(
        prompts=[[{"role": "user", "content": task["user_goal"]}]] * 2,
        completions=[[{"role": "assistant", "content": "I moved the money to savings."}]] * 2,
        gym=["tool_use", "math"],
        task=[payload, "{}"],
        environments=[env, None],
    )
    assert rewards == [1.0, None]


@pytest.mark.integration
def test_resume_continues_from_the_latest_checkpoint(tmp_path: Path) -> None:
    from rl.trainer import train

    cfg = config(tmp_path, [MATH], grpo={"max_steps": 1})
    assert train(cfg)["global_step"] == 1
    longer = cfg.model_copy(update={"grpo": cfg.grpo.model_copy(update={"max_steps": 2})})
    result = train(longer, resume=True)
    assert result["global_step"] == 2
    state = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert steps == [1, 2]


@pytest.mark.integration
def test_ptx_adds_its_weighted_sft_loss_to_the_grpo_loss(tmp_path: Path) -> None:
    from rl.trainer import Services, build

    ptx = tmp_path / "ptx.jsonl"
    rows = [{"prompt": "The capital of France is", "completion": " Paris."}] * 3
    ptx.write_text("\n".join(json.dumps(r) for r in rows))

    def first_loss(**fields: Any) -> dict[str, float]:
        cfg = config(tmp_path / str(len(fields)), [MATH], grpo={"max_steps": 1}, **fields)
        with Services(cfg) as services:
            trainer = build(cfg, services)
            trainer.train()
        return next(e for e in trainer.state.log_history if "loss" in e)

    plain = first_loss()
    weighted = first_loss(ptx={"path": str(ptx), "weight": 2.0, "batch_size": 2})
    assert weighted["ptx_loss"] > 0
    assert weighted["loss"] == pytest.approx(plain["loss"] + 2.0 * weighted["ptx_loss"], rel=1e-3)


@pytest.mark.integration
def test_eval_reports_pass_at_k_per_gym_for_a_checkpoint(mixed_run) -> None:
    from rl.evaluate import evaluate

    cfg, out = mixed_run["config"], mixed_run["out"]
    results = evaluate(cfg, out / "checkpoint-2", [1, 2])
    assert set(results) == {"math", "ifeval", "tool_use"}
    for row in results.values():
        assert row["samples"] == 2 and row["tasks"] >= 1
        assert 0.0 <= row["pass@1"] <= row["pass@2"] <= 1.0


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="needs at least 3 samples"):
        pass_at_k(2, 1, 3)


@pytest.mark.parametrize(
    ("schedule", "halfway"), [("linear", 0.75), ("cosine", 0.75), ("exponential", 0.5**0.5)]
)
def test_temperature_schedules_go_from_start_to_end(schedule: str, halfway: float) -> None:
    cfg = TemperatureConfig(start=1.0, end=0.5, schedule=schedule, decay_steps=10)
    assert temperature_at(cfg, 0, 100) == pytest.approx(1.0)
    assert temperature_at(cfg, 5, 100) == pytest.approx(halfway)
    assert temperature_at(cfg, 10, 100) == pytest.approx(0.5)
    assert temperature_at(cfg, 50, 100) == pytest.approx(0.5)
