"""The tool-use gym: TRL environment classes over real executable tool sets, task files
(synth's rl_prompts.parquet and hand-written JSONL), and the expected-state verifier."""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers.utils import get_json_schema

from rl.environments import environment_class
from rl.gyms import GymError, Sample, build_gym
from rl.gyms.tool_use import read_tasks

TASKS = Path(__file__).resolve().parents[2] / "configs" / "grpo" / "tasks" / "bank.jsonl"


def tools_of(cls: type) -> dict[str, object]:
    return {
        name: fn
        for name, fn in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in ("reset", "get_reward")
    }


def test_every_tool_set_renders_the_schemas_trl_needs() -> None:
    from sandboxes.toolsets import TOOLSETS

    for name, toolset in TOOLSETS.items():
        methods = tools_of(environment_class(name))
        assert set(methods) == {spec.name for spec in toolset.specs()}
        for spec in toolset.specs():
            schema = get_json_schema(methods[spec.name])["function"]
            assert set(schema["parameters"]["properties"]) == set(spec.parameters["properties"])
            assert set(schema["parameters"].get("required", [])) == set(
                spec.parameters.get("required", [])
            )


def bank_row() -> dict[str, str]:
    gym = build_gym("tool_use", {"path": str(TASKS), "eval_count": 0})
    return gym.rows("train")[0]


def test_reset_seeds_the_world_and_calls_change_it_or_answer_errors() -> None:
    row = bank_row()
    env = environment_class(row["environment"])()
    assert env.reset(**row) is None
    task = json.loads(row["task"])["task"]
    assert env.state == task["initial_state"]
    before = env.state["accounts"]["checking-1"]["balance"]

    async def play() -> list[str]:
        replies = [
            await env.transfer(source="checking-1", destination="savings-2", amount=10),
            await env.transfer(source="checking-1", destination="savings-2", amount=-5),
            await env.transfer(source="nowhere", destination="savings-2", amount=1),
            await env.get_balance(account=42),
        ]
        await env.finish()
        return replies

    done, negative, unknown, mistyped = asyncio.run(play())
    assert '"tx-1"' in done
    assert env.state["accounts"]["checking-1"]["balance"] == before - 10
    assert negative.startswith("error:") and unknown.startswith("error:")
    assert mistyped.startswith("error: invalid arguments")
    assert env.failure is None
    env.reset(**row)  # a new episode starts from the task's state again
    assert env.state == task["initial_state"] and env.calls == 0


def test_the_verifier_compares_the_final_state_with_the_expected_state() -> None:
    gym = build_gym("tool_use", {"path": str(TASKS), "eval_count": 0})
    row = bank_row()
    task = json.loads(row["task"])
    amount = 100.0 + task["task"]["checks"]["expected_state"]["accounts"]["savings-2"]["balance"]
    done, idle, wrong = (environment_class("bank")() for _ in range(3))
    for env in (done, idle, wrong):
        env.reset(**row)

    async def play() -> None:
        await done.transfer(source="checking-1", destination="savings-2", amount=amount - 200.0)
        await wrong.transfer(source="checking-1", destination="savings-2", amount=1.0)
        for env in (done, idle, wrong):
            await env.finish()

    asyncio.run(play())
    samples = [
        Sample(row["prompt"], [{"role": "assistant", "content": "done"}], task, environment=env)
        for env in (done, idle, wrong)
    ]
    samples.append(Sample(row["prompt"], [], task, environment=None))
    assert gym.verify_batch(samples) == [1.0, 0.0, 0.0, None]


def test_synth_rl_prompts_parquet_is_read_and_unplayable_rows_skipped(tmp_path: Path) -> None:
    specs = [json.loads(line) for line in TASKS.read_text().splitlines()]
    rows = []
    for spec in specs:
        toolset = spec.pop("toolset")
        rows.append(
            {
                "id": spec["id"],
                "agent_id": "agent-bank",
                "prompt": [
                    {"role": "system", "content": "You are a bank agent.", "tool_calls": None},
                    {"role": "user", "content": spec["user_goal"], "tool_calls": None},
                ],
                "task": json.dumps(spec),
                "tools": "[]",
                "environment": spec["environment"],
                "toolset": toolset,
            }
        )
    simulated = dict(rows[0], task=json.dumps({**specs[0], "environment": "simulated"}))
    rows.append({**simulated, "environment": "simulated", "toolset": None})
    path = tmp_path / "rl_prompts.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    tasks = read_tasks(path)
    assert len(tasks) == len(specs)
    assert tasks[0].prompt == [
        {"role": "system", "content": "You are a bank agent."},
        {"role": "user", "content": specs[0]["user_goal"]},
    ]
    assert tasks[0].toolset == "bank"
    # a row that is not the synthesis' (here: no agent_id) is named with its field
    pq.write_table(
        pa.Table.from_pylist([{k: v for k, v in rows[0].items() if k != "agent_id"}]), path
    )
    with pytest.raises(GymError, match=r"rl_prompts.parquet: row 0: agent_id: Field required"):
        read_tasks(path)


def test_bad_task_files_name_the_row_and_field(tmp_path: Path) -> None:
    spec = json.loads(TASKS.read_text().splitlines()[0])
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({**spec, "toolset": "casino"}) + "\n")
    with pytest.raises(GymError, match=r"unknown.jsonl:1: toolset: unknown tool set 'casino'"):
        read_tasks(unknown)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({**spec, "difficulty": "impossible"}) + "\n")
    with pytest.raises(GymError, match=r"broken.jsonl:1: task.difficulty"):
        read_tasks(broken)
    with pytest.raises(GymError, match="no such file"):
        read_tasks(tmp_path / "missing.jsonl")


def test_judge_rubrics_are_checked_when_the_config_loads(tmp_path: Path) -> None:
    from llm.yamlconf import YamlConfigError
    from rl.config import load_config

    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "bank.yaml").write_text(
        "id: bank-policy\nkind: trajectory\ndescription: Bank rules.\ncriteria:\n"
        "  - id: confirms\n    description: Confirms the amount before a transfer.\n"
        "    scale: binary\n"
    )

    def config(options: str) -> Path:
        path = tmp_path / "c.yaml"
        path.write_text(
            "name: t\noutput_dir: runs/t\ngyms:\n  - gym: tool_use\n"
            f"    options: {{path: {TASKS}, {options}}}\n"
        )
        return path

    own = f"judge_rubric_files: [{tmp_path / 'rubrics'}]"
    loaded = load_config(config(f"judge_rubrics: [trajectory, bank-policy], {own}"))
    assert loaded.gyms[0].options["judge_rubrics"] == ["trajectory", "bank-policy"]
    with pytest.raises(YamlConfigError, match=r"unknown rubric ids \['bank-policy'\]"):
        load_config(config("judge_rubrics: [bank-policy]"))


def test_the_judge_scores_trajectories_against_the_users_rubrics(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from llm.testing import ScriptedEndpoint
    from rl.gyms.base import Resources
    from synth.testing import ScriptedWorld

    (tmp_path / "bank.yaml").write_text(
        "id: bank-policy\nkind: trajectory\ndescription: Bank rules.\ncriteria:\n"
        "  - id: confirms\n    description: Confirms the amount before a transfer.\n"
        "    scale: binary\n"
    )
    spec = json.loads(TASKS.read_text().splitlines()[0])
    spec.pop("toolset")
    spec["checks"] = {}  # no expected state: the judge decides
    played = Sample(
        prompt=[{"role": "user", "content": spec["user_goal"]}],
        completion=[{"role": "assistant", "content": "Done: moved 50.00."}],
        payload={"task": spec, "toolset": "bank"},
        environment=SimpleNamespace(state={"transfers": []}),
    )
    options = {
        "path": str(TASKS),
        "judge_rubrics": ["bank-policy"],
        "judge_rubric_files": [str(tmp_path / "bank.yaml")],
    }
    with ScriptedEndpoint(ScriptedWorld()) as server:
        gym = build_gym("tool_use", options, Resources(judge=lambda: server.endpoint()))
        assert gym.verify_batch([played]) == [1.0]
    prompt = json.dumps(server.requests[0])
    assert "Confirms the amount before a transfer" in prompt and "bank-policy.confirms" in prompt
