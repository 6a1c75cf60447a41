"""Docker coding tasks from real problem sets, and decontamination, through the synthesis:
problems drawn per agent, tasks that carry their set's origin, and tasks overlapping a
named evaluation set removed before they are played, with the reason in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.testing import ScriptedEndpoint
from sandboxes.code_env import RUN_PYTHON
from synth.agents import ToolSource, plan_agents
from synth.config import load_config
from synth.pipeline import drawn_problems
from synth.problems import real_problems
from synth.testing import ScriptedWorld
from synth.tools import build_tools
from synth.worker import Worker, WorkerSettings
from tool_registry import ToolRepository

from .conftest import endpoints_for, scripted_config, small_config

CODING = {"simulated": 0.0, "executable": 0.5, "docker": 0.5}


def test_agents_draw_distinct_problems_until_the_pool_wraps(tmp_path: Path) -> None:
    config = small_config(
        tmp_path, environment_mix={"docker": 1.0, "simulated": 0, "executable": 0}
    )
    source = ToolSource(repository=ToolRepository(), toolsets={}, mcp={}, code_tools=[RUN_PYTHON])
    agents = plan_agents(config, source)
    pool = real_problems("humaneval")[:7]
    drawn = drawn_problems(agents, pool, 2, seed=0)
    assert set(drawn) == {a.id for a in agents} and len(agents) == 4
    flat = [p.origin for a in agents for p in drawn[a.id]]
    assert len(flat) == 8 and len(set(flat[:7])) == 7 and flat[7] == flat[0]  # wraps
    assert drawn == drawn_problems(agents, pool, 2, seed=0)  # deterministic
    assert drawn != drawn_problems(agents, pool, 2, seed=1)


async def test_a_coding_agents_tasks_come_from_its_problems(tmp_path: Path, scripted) -> None:
    config = small_config(tmp_path, environment_mix=CODING, tasks={"per_agent": 3})
    agents = plan_agents(config, await build_tools(config, tmp_path, None))
    coder = next(a for a in agents if a.environment == "docker")
    problems = real_problems("humaneval")[:2]
    worker = Worker(endpoints_for(scripted), WorkerSettings(tasks_per_agent=3))
    try:
        tasks, failures, _, _ = await worker.make_tasks(coder, problems)
    finally:
        await worker.aclose()
    assert not failures
    assert [t.source for t in tasks] == ["real_set", "real_set", "template"]
    assert [t.origin for t in tasks[:2]] == [p.origin for p in problems]
    assert all(t.eval_set for t in tasks[:2]) and not tasks[2].eval_set
    assert tasks[0].checks.tests == problems[0].tests
    assert tasks[0].checks.entry_point == problems[0].entry_point
    assert problems[0].entry_point in tasks[0].user_goal
    assert tasks[2].difficulty == "clarify" and tasks[2].checks.tests  # a template's


@pytest.mark.integration
def test_tasks_overlapping_humaneval_are_removed_with_the_reason(
    tmp_path, local_ray, api_env, sandbox_image
) -> None:
    from synth.pipeline import run

    decontaminate = {"against": ["humaneval"]}
    with ScriptedEndpoint(ScriptedWorld()) as server:
        config = scripted_config(
            tmp_path,
            server,
            environment_mix=CODING,
            tasks={"per_agent": 2, "decontaminate": decontaminate},
        )
        manifest = run(config)
    stages = json.loads((Path(config.output_dir) / "stages.json").read_text())
    assert stages["problems"]["counts"]["real"] == 164  # the whole of HumanEval is the pool
    removed = manifest.decontaminated
    assert len(removed) == 4 and {r.source for r in removed} == {"humaneval"}
    assert all(r.item.startswith("HumanEval/") and "origin" in r.reason for r in removed)
    assert manifest.counts.tasks == 4 == manifest.counts.trajectories  # the executable ones
    assert manifest.reconciled and manifest.eval_set_tasks == 0
    assert manifest.problems.real == 164 and manifest.tasks_by_source == {
        "executable": {"template": 4}
    }
    tasks = [json.loads(line) for line in (Path(config.output_dir) / "tasks.jsonl").open()]
    assert {t["id"] for t in tasks}.isdisjoint({r.task_id for r in removed})


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("  coding:\n    real_sets: [leetcode]\n", "unknown problem set 'leetcode'"),
        ("  coding:\n    generated: -1\n", "tasks.coding.generated"),
        ("  decontaminate:\n    against: [/no/such/heldout.jsonl]\n", "no such file"),
        ("  decontaminate:\n    threshold: 0\n", "tasks.decontaminate.threshold"),
    ],
)
def test_bad_coding_and_decontamination_blocks_name_file_and_line(
    tmp_path: Path, block: str, problem: str
) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text("name: mine\ntasks:\n" + block)
    with pytest.raises(Exception) as caught:
        load_config(config, check_files=True)
    message = str(caught.value)
    assert str(config) in message and problem in message


def test_a_problem_set_without_its_data_file_is_refused_at_load(tmp_path: Path) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text("tasks:\n  coding:\n    real_sets:\n      - {name: mbpp, path: nope.jsonl}\n")
    with pytest.raises(Exception, match=r"nope\.jsonl"):
        load_config(config, check_files=True)
