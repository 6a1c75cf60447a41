"""rl.trials and rl.task_sources: ids, seeds and splits; task sources and their errors; the
trials directory and its endpoints (scripted endpoint on loopback, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from llm.testing import ScriptedEndpoint
from rl.task_sources import TaskSourceError, in_split, load_task_set, split_of
from rl.trial_config import TaskSource, TrialsConfig
from rl.trials import Trial, TrialsError, open_store, plan, run_trials, serving
from synth.schema import Checks

from .trial_world import BANK, BankAgent, bank_tasks, role, write_source


def test_a_task_is_in_the_same_split_whatever_else_is_loaded() -> None:
    ids = [f"task-{i:04x}" for i in range(2000)]
    held = [i for i in ids if split_of(i, 0.3) == "heldout"]
    assert held == [i for i in reversed(ids) if split_of(i, 0.3) == "heldout"][::-1]
    assert 500 < len(held) < 700  # about 30% (a fixed hash: the same count every run)
    assert all(split_of(i, 0.0) == "train" for i in ids)
    assert all(split_of(i, 1.0) == "heldout" for i in ids)
    assert set(held) <= {i for i in ids if split_of(i, 0.5) == "heldout"}  # nested fractions


def test_train_and_heldout_partition_the_tasks_in_order() -> None:
    tasks = bank_tasks(12)
    train, held = in_split(tasks, "train", 0.5), in_split(tasks, "heldout", 0.5)
    assert train and held and not {t.id for t in train} & {t.id for t in held}
    assert sorted(train + held, key=tasks.index) == in_split(tasks, "all", 0.5) == tasks
    assert train == [t for t in tasks if t in train]


def test_trials_have_deterministic_distinct_ids_and_seeds() -> None:
    tasks = bank_tasks(3)
    trials = [Trial(t, BANK, s) for s in range(4) for t in tasks]
    again = [Trial(t, BANK, s) for s in range(4) for t in tasks]
    assert [t.id for t in trials] == [t.id for t in again]
    assert [t.seed for t in trials] == [t.seed for t in again]
    assert len({t.id for t in trials}) == len({t.seed for t in trials}) == 12
    assert all(0 <= t.seed < 2**31 for t in trials)


def test_the_plan_covers_every_task_before_its_second_sample(tmp_path: Path) -> None:
    tasks = bank_tasks(3)
    task_set = load_task_set([TaskSource.model_validate(write_source(tmp_path, tasks))])
    trials = plan(task_set, task_set.tasks, 2)
    assert [(t.task.id, t.sample) for t in trials] == [(t.id, s) for s in range(2) for t in tasks]


def source(tmp_path: Path, agents: str, tasks: str) -> TaskSource:
    (tmp_path / "agents.jsonl").write_text(agents)
    (tmp_path / "tasks.jsonl").write_text(tasks)
    return TaskSource(agents=tmp_path / "agents.jsonl", tasks=tmp_path / "tasks.jsonl")


def line(model: object) -> str:
    return json.dumps(model.model_dump(mode="json")) + "\n"  # type: ignore[attr-defined]


def test_an_unknown_environment_kind_names_file_line_and_the_known_kinds(tmp_path: Path) -> None:
    first, second = bank_tasks(2)
    row = {**second.model_dump(mode="json"), "environment": "quantum"}
    bad = source(tmp_path, line(BANK), line(first) + json.dumps(row) + "\n")
    with pytest.raises(TaskSourceError) as caught:
        load_task_set([bad])
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'tasks.jsonl'}:2: environment: unknown environment")
    assert "'quantum'" in message and "executable" in message and "\n" not in message


def test_a_task_whose_agent_is_missing_names_its_line(tmp_path: Path) -> None:
    task = bank_tasks(1)[0].model_copy(update={"agent_id": "agent-gone"})
    with pytest.raises(TaskSourceError, match=r"tasks.jsonl:1: agent_id: no agent 'agent-gone'"):
        load_task_set([source(tmp_path, line(BANK), line(task))])


def test_unreadable_rows_and_unknown_tool_sets_name_file_and_line(tmp_path: Path) -> None:
    task = bank_tasks(1)[0]
    with pytest.raises(TaskSourceError, match=r"tasks.jsonl:2: invalid JSON"):
        load_task_set([source(tmp_path, line(BANK), line(task) + "{not json\n")])
    unknown = BANK.model_copy(update={"toolset": "casino"})
    with pytest.raises(
        TaskSourceError, match=r"agents.jsonl:1: toolset: unknown tool set 'casino'"
    ):
        load_task_set([source(tmp_path, line(unknown), line(task))])
    with pytest.raises(TaskSourceError, match=r"tasks.jsonl:1: user_goal: Field required"):
        row = {k: v for k, v in task.model_dump(mode="json").items() if k != "user_goal"}
        load_task_set([source(tmp_path, line(BANK), json.dumps(row) + "\n")])
    with pytest.raises(TaskSourceError, match="no such file"):
        load_task_set([TaskSource(agents=tmp_path / "gone.jsonl", tasks=tmp_path / "tasks.jsonl")])


def test_a_task_in_two_sources_is_refused(tmp_path: Path) -> None:
    tasks = bank_tasks(2)
    one = TaskSource.model_validate(write_source(tmp_path / "one", tasks))
    two = TaskSource.model_validate(write_source(tmp_path / "two", tasks[1:]))
    with pytest.raises(TaskSourceError, match=f"task {tasks[1].id} is also in .*one"):
        load_task_set([one, two])


def test_a_synthesis_run_directory_is_a_source_with_its_mcp_servers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_source(run, bank_tasks(2))
    server = {"name": "clock", "command": ["mcp-server-time"]}
    (run / "config.yaml").write_text(yaml.safe_dump({"tools": {"mcp_servers": [server]}}))
    loaded = load_task_set([TaskSource(run=run)])
    assert [t.id for t in loaded.tasks] == [t.id for t in bank_tasks(2)]
    assert list(loaded.mcp_servers) == ["clock"]
    assert loaded.agent(loaded.tasks[0]) == BANK


def test_a_source_is_exactly_one_kind() -> None:
    with pytest.raises(ValidationError, match="exactly one of run, tasks"):
        TaskSource.model_validate({"run": "a", "domain": "airline"})
    with pytest.raises(ValidationError, match="tasks and agents go together"):
        TaskSource.model_validate({"tasks": "t.jsonl"})
    with pytest.raises(ValidationError, match="not a synthesis run directory"):
        TaskSource.model_validate({"run": "/nonexistent"}, context={"check_files": True})


def test_a_directory_of_another_config_is_refused(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", bank_tasks(1))
    with ScriptedEndpoint(BankAgent()) as server:
        config = scripted_config(src, server.url, samples=1)
        task_set = load_task_set(config.tasks)
        store = open_store(tmp_path / "out", config)
        with serving(config.endpoints.user, config) as endpoints:
            run_trials(plan(task_set, task_set.tasks, 1), endpoints, config, store)
    other = config.model_copy(update={"temperature": 0.1})
    with pytest.raises(TrialsError, match="holds trials of another config"):
        open_store(tmp_path / "out", other)


def test_an_endpoint_that_does_not_answer_fails_before_any_trial(tmp_path: Path) -> None:
    with ScriptedEndpoint(BankAgent()) as server:
        url = server.url
    config = scripted_config(write_source(tmp_path / "src", bank_tasks(1)), url, samples=1)
    task_set = load_task_set(config.tasks)
    store = open_store(tmp_path / "out", config)
    with serving(config.endpoints.user, config) as endpoints:
        with pytest.raises(TrialsError, match="endpoint for role 'agent' does not answer"):
            run_trials(plan(task_set, task_set.tasks, 1), endpoints, config, store)
    assert not (tmp_path / "out").exists()  # nothing written, not even the binding


def test_unverifiable_tasks_are_recognised() -> None:
    from rl.task_sources import verifiable

    task = bank_tasks(1)[0]
    assert verifiable(task)
    assert not verifiable(task.model_copy(update={"checks": Checks()}))
    assert verifiable(task.model_copy(update={"checks": Checks(tests="assert True")}))


def scripted_config(src: dict, url: str, **changes: object) -> TrialsConfig:
    data = {
        "tasks": [src],
        "heldout_fraction": 0,
        "endpoints": {r: role(url) for r in ("user", "tool_simulator", "judge")},
        **changes,
    }
    return TrialsConfig.model_validate(data)
