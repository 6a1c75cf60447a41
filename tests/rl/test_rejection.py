"""Rejection sampling: only passing trials of verifiable tasks are kept, as an SFT dataset
with its manifest, resumably per (task, sample). A scripted agent on loopback solves some
bank tasks and fails others; the bank tool set and its state check are real."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from llm.testing import ScriptedEndpoint
from llm.yamlconf import YamlConfigError
from rl.rejection import sample
from rl.sample_config import SampleConfig, load_sample_config
from rl.trials import Trial, TrialsError
from synth.schema import Checks
from synth.store import RunStore

from .trial_world import BANK, BankAgent, bank_tasks, role, write_source

ROLES = ("user", "tool_simulator", "judge")


def config_data(tmp_path: Path, url: str, tasks: list[Any], **changes: Any) -> dict[str, Any]:
    return {
        "output_dir": str(tmp_path / "out"),
        "tasks": [write_source(tmp_path / "src", tasks)],
        "heldout_fraction": 0,
        "samples": 3,
        "policy": {"endpoint": role(url)},
        "endpoints": {r: role(url) for r in ROLES},
        **changes,
    }


def ids_of(out: Path) -> list[str]:
    return [row["id"] for row in RunStore(out).rows(["id"])]


def test_only_passing_trials_of_verifiable_tasks_are_kept(tmp_path: Path) -> None:
    right, wrong, flaky, open_ended = bank_tasks(4)
    open_ended = open_ended.model_copy(update={"checks": Checks()})
    agent = BankAgent(wrong={wrong.user_goal}, flaky={flaky.user_goal})
    with ScriptedEndpoint(agent) as server:
        tasks = [right, wrong, flaky, open_ended]
        config = SampleConfig.model_validate(config_data(tmp_path, server.url, tasks))
        manifest = sample(config)
    flaky_passes = sum(Trial(flaky, BANK, s).seed % 2 == 0 for s in range(3))
    accepted = pq.read_table(tmp_path / "out" / "data" / "accepted").to_pylist()
    assert len(accepted) == 3 + flaky_passes
    assert all(row["verified"] and row["outcome"] == "accepted" for row in accepted)
    assert {json.loads(r["trajectory_meta"])["task_id"] for r in accepted} == {right.id, flaky.id}
    assert manifest["tasks"] == {
        "in_split": 4,
        "sampled": 3,
        "skipped_unverifiable": 1,
        "solved": 1 + (flaky_passes > 0),
    }
    assert manifest["trials"] == {
        "planned": 9,
        "played": 9,
        "passed": 3 + flaky_passes,
        "missing": 0,
    }
    assert manifest["per_task"][wrong.id] == {"played": 3, "passed": 0}
    assert manifest["per_task"][flaky.id] == {"played": 3, "passed": flaky_passes}
    assert manifest["reasons"] == {"state_mismatch": 6 - flaky_passes}
    assert manifest["by_environment"]["executable"]["played"] == 9
    assert manifest["by_difficulty"]["single"]["pass_rate"] == pytest.approx((3 + flaky_passes) / 9)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest
    assert [
        t.id for t in RunStore(tmp_path / "out").load_models("tasks.jsonl", type(right)) or []
    ] == [
        right.id,
        wrong.id,
        flaky.id,
    ]


def test_the_kept_trials_are_an_sft_dataset_with_tool_calls(tmp_path: Path) -> None:
    from datasets import load_dataset

    with ScriptedEndpoint(BankAgent()) as server:
        sample(SampleConfig.model_validate(config_data(tmp_path, server.url, bank_tasks(2))))
    files = str(tmp_path / "out" / "data" / "accepted" / "*.parquet")
    data = load_dataset("parquet", data_files=files, split="train")
    assert len(data) == 6
    messages = data[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[2]["tool_calls"][0]["function"]["name"] == "transfer"
    assert json.loads(data[0]["tools"])[0]["type"] == "function"


def test_a_stopped_run_resumes_without_duplicates_or_losses(tmp_path: Path) -> None:
    tasks = bank_tasks(4)
    agent = BankAgent()
    with ScriptedEndpoint(agent) as server:
        config = SampleConfig.model_validate(config_data(tmp_path, server.url, tasks))
        first = sample(config, max_trials=5)
        assert first["trials"]["played"] == 5 and first["trials"]["missing"] == 7
        agent.seeds.clear()
        second = sample(config)
    ids = ids_of(tmp_path / "out")
    assert len(ids) == len(set(ids)) == 12
    assert second["trials"]["played"] == 12 and second["trials"]["passed"] == 12
    assert sum(len(seeds) for seeds in agent.seeds.values()) == 7  # only the missing replayed
    again = sample(config)  # a finished run plays nothing
    assert again["trials"] == second["trials"] and len(ids_of(tmp_path / "out")) == 12


def test_a_killed_command_resumes_without_duplicates(tmp_path: Path, watched) -> None:
    tasks = bank_tasks(6)
    with ScriptedEndpoint(BankAgent(), latency_s=0.1) as server:
        data = config_data(tmp_path, server.url, tasks, concurrency=1)
        (tmp_path / "sample.yaml").write_text(yaml.safe_dump(data))
        command = watched("rl", "sample", str(tmp_path / "sample.yaml"), "--progress-every", "0.05")
        out = tmp_path / "out" / "data" / "accepted"
        command.wait_for(r"samples", lambda _: len(list(out.glob("part-*"))) >= 3)
        command.proc.send_signal(signal.SIGTERM)
        assert command.finish() == 143, command.stderr
        assert "finished trials are kept" in command.last_line()
        partial = len(ids_of(tmp_path / "out"))
        assert 3 <= partial < 18
        rerun = watched("rl", "sample", str(tmp_path / "sample.yaml"))
        assert rerun.finish() == 0, rerun.stderr
    ids = ids_of(tmp_path / "out")
    assert len(ids) == len(set(ids)) == 18
    assert json.loads(rerun.output.strip().splitlines()[-1])["trials"]["played"] == 18


def test_another_config_into_the_same_directory_is_refused(tmp_path: Path) -> None:
    with ScriptedEndpoint(BankAgent()) as server:
        data = config_data(tmp_path, server.url, bank_tasks(1), samples=1)
        sample(SampleConfig.model_validate(data))
        with pytest.raises(TrialsError, match="holds trials of another config"):
            sample(SampleConfig.model_validate({**data, "samples": 2}))


def test_a_split_without_verifiable_tasks_is_one_line(tmp_path: Path) -> None:
    tasks = [t.model_copy(update={"checks": Checks()}) for t in bank_tasks(2)]
    with pytest.raises(TrialsError, match="2 tasks in split 'train', none with a verifiable"):
        sample(SampleConfig.model_validate(config_data(tmp_path, "http://127.0.0.1:9", tasks)))
    assert not (tmp_path / "out").exists()


def test_a_tasks_file_with_an_unknown_environment_exits_2_writing_nothing(
    tmp_path: Path, watched
) -> None:
    data = config_data(tmp_path, "http://127.0.0.1:9", bank_tasks(1))
    tasks_file = Path(data["tasks"][0]["tasks"])
    row = json.loads(tasks_file.read_text())
    tasks_file.write_text(json.dumps({**row, "environment": "hologram"}) + "\n")
    (tmp_path / "sample.yaml").write_text(yaml.safe_dump(data))
    command = watched("rl", "sample", str(tmp_path / "sample.yaml"))
    assert command.finish() == 2
    assert command.stderr.strip() == command.last_line()  # one line
    assert f"{tasks_file}:1: environment: unknown environment kind 'hologram'" in command.stderr
    assert not (tmp_path / "out").exists()


def test_the_config_names_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("tasks:\n  - run: x\n    domain: airline\nsamples: 0\n")
    with pytest.raises(YamlConfigError) as caught:
        load_sample_config(tmp_path / "bad.yaml")
    problems = str(caught.value).splitlines()
    assert problems[0].startswith(f"{tmp_path / 'bad.yaml'}:2: tasks[0]: ")
    assert "exactly one of run" in problems[0]
    assert (
        problems[1]
        == f"{tmp_path / 'bad.yaml'}:4: samples: Input should be greater than or equal to 1"
    )


def test_the_demo_config_loads_with_its_files() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_sample_config(root / "configs" / "sample" / "demo.yaml")
    assert config.policy.checkpoint == "embedded" and config.split == "train"


@pytest.mark.integration
def test_docker_trials_are_decided_by_their_unit_tests(tmp_path: Path, sandbox_image) -> None:
    from synth.testing import ScriptedWorld

    root = Path(__file__).resolve().parents[2]
    source = {
        "agents": str(root / "configs" / "sample" / "tasks" / "agents.jsonl"),
        "tasks": str(root / "configs" / "sample" / "tasks" / "tasks.jsonl"),
    }
    solutions = {
        "flatten": "def flatten(items):\n    out = []\n    for x in items:\n"
        "        out += flatten(x) if isinstance(x, list) else [x]\n    return out",
        "second_largest": "def second_largest(numbers):\n    return max(numbers)",  # wrong
    }
    with ScriptedEndpoint(ScriptedWorld(solutions=solutions)) as server:
        data = {
            **config_data(tmp_path, server.url, []),
            "tasks": [source],
            "split": "all",
            "samples": 1,
        }
        config = SampleConfig.model_validate(data)
        manifest = sample(config)
    docker = manifest["by_environment"]["docker"]
    assert docker == {"tasks": 3, "played": 3, "passed": 1, "pass_rate": pytest.approx(1 / 3)}
    rows = [r for r in RunStore(tmp_path / "out").rows() if r["environment"] == "docker"]
    reasons = {json.loads(r["trajectory_meta"])["task_id"]: r["reason"] for r in rows}
    assert "tests_failed" in reasons.values()
    assert all(r["verified"] is (r["outcome"] == "accepted") for r in rows)
