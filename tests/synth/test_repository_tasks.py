"""Repository (SWE-style) tasks through the synthesis, in real Docker: a repository agent
planned beside the coding agents, mutation tasks bound to it, played in the project's
container by a scripted agent, and judged by the project's tests (the judge is not
asked); and the whole job on Ray with a repository share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm.testing import Reply, ScriptedEndpoint, call
from synth.agents import REPOSITORY, SWE_TOOLSET, plan_agents
from synth.schema import TaskSpec
from synth.swe_tasks import SWETask
from synth.testing import ScriptedWorld
from synth.tools import build_tools
from synth.worker import Worker, WorkerSettings

from .conftest import endpoints_for, scripted_config, small_config

ROOT = Path(__file__).resolve().parents[2]
TINYPROJ = ROOT / "tests" / "fixtures" / "swe" / "tinyproj"
IMAGE = "summit-swe-test-synth:latest"
CODERS = {"simulated": 0.0, "executable": 0.0, "docker": 1.0}


def repositories(**more: Any) -> dict[str, Any]:
    return {"projects": ["tinyproj"], "image": IMAGE, "max_mutants": 12, **more}


async def test_a_share_of_the_docker_agents_work_on_repositories(tmp_path: Path) -> None:
    config = small_config(
        tmp_path, environment_mix=CODERS, tasks={"repositories": repositories(share=0.5)}
    )
    agents = plan_agents(config, await build_tools(config, tmp_path, None))
    kinds = [(a.domain, a.toolset) for a in agents]
    assert kinds == [("python", None), (REPOSITORY, SWE_TOOLSET)] * 2
    repo = agents[1]
    assert {t.name for t in repo.tools} == {"run_shell", "read_file", "edit_file", "run_tests"}
    # without projects, every Docker agent writes functions
    plain = small_config(tmp_path, environment_mix=CODERS)
    assert {a.toolset for a in plan_agents(plain, await build_tools(plain, tmp_path, None))} == {
        None
    }


async def test_mutation_tasks_are_bound_to_the_agent_and_run_out(tmp_path: Path, scripted) -> None:
    config = small_config(
        tmp_path,
        environment_mix=CODERS,
        tasks={"per_agent": 3, "repositories": repositories(share=1.0)},
    )
    agent = plan_agents(config, await build_tools(config, tmp_path, None))[0]
    made = SWETask(
        project="tinyproj",
        path="tinyproj/stats.py",
        function="clamp",
        operator="flip_compare",
        description="< became >=",
        mutated_source="def clamp(value, low, high):\n    return value\n",
        failing_tests=("tests.test_stats.ClampTest.test_below",),
        test_command="python3 -m unittest",
        issue="clamp(-5, 0, 10) returns -5; it should return 0.",
        failure_report="FAIL: tests.test_stats.ClampTest.test_below",
    ).task_spec("")
    worker = Worker(endpoints_for(scripted), WorkerSettings(tasks_per_agent=3))
    try:
        tasks, failures, _, _ = await worker.make_tasks(agent, [made, made])
    finally:
        await worker.aclose()
    assert len(tasks) == 2 and len(failures) == 1 and "no repository task" in failures[0]
    assert {t.agent_id for t in tasks} == {agent.id} and tasks[0].id != tasks[1].id
    assert tasks[0].rubric.id == f"task.{tasks[0].id.removeprefix('task-')}"
    assert tasks[0].checks.repo == made.checks.repo and tasks[0].source == "mutation"


# --------------------------------------------------------------------- real Docker
@pytest.fixture(scope="module")
def image(sandbox_image: str) -> Iterator[str]:
    from sandboxes.docker import engine
    from sandboxes.swe_image import ProjectSource, build_swe_image

    build_swe_image([ProjectSource("tinyproj", TINYPROJ)], IMAGE, base=sandbox_image)
    yield IMAGE
    engine().images.remove(IMAGE, force=True)


def fixer(task: TaskSpec, original: str) -> Any:
    """A scripted world whose agent puts the original file back, then says so."""
    world = ScriptedWorld()
    repo = task.checks.repo
    assert repo is not None

    def respond(request: dict[str, Any]) -> Reply:
        if request.get("tools"):
            if request["messages"][-1].get("role") == "tool":
                return Reply(content="I restored the condition; the tests pass now.")
            edit = {"path": repo.path, "old": repo.mutated_source, "new": original}
            return Reply(tool_calls=[call("edit_file", edit, "call_1")])
        return world(request)

    return respond


def idle(request: dict[str, Any]) -> Reply:
    if request.get("tools"):
        return Reply(content="I looked at the project but could not find the problem.")
    return ScriptedWorld()(request)


@pytest.mark.integration
async def test_a_repository_task_is_judged_by_the_projects_tests(
    tmp_path: Path, image: str
) -> None:
    from synth.swe_tasks import build_swe_tasks

    kept, dropped = await build_swe_tasks("tinyproj", None, image=image, max_mutants=6)
    assert kept, f"no mutant kept: {dict(dropped)}"
    config = small_config(
        tmp_path, environment_mix=CODERS, tasks={"repositories": repositories(share=1.0)}
    )
    agent = plan_agents(config, await build_tools(config, tmp_path, None))[0]
    made = kept[0]
    original = (TINYPROJ / made.path).read_text()
    settings = WorkerSettings(tasks_per_agent=1, swe_image=image)
    outcomes = {}
    for name, responder in (("fixed", fixer(made.task_spec(""), original)), ("idle", idle)):
        with ScriptedEndpoint(responder) as server:
            worker = Worker(endpoints_for(server), settings)
            try:
                [task], _, _, _ = await worker.make_tasks(agent, [made.task_spec("")])
                outcomes[name] = await worker.run_task(task, agent)
            finally:
                await worker.aclose()
            assert not any("JudgeAnswer" in json.dumps(r) for r in server.requests)
    fixed, idle_record = outcomes["fixed"], outcomes["idle"]
    assert fixed.outcome == "accepted" and fixed.verified, fixed.detail
    assert fixed.trajectory.final_state["reward"] == 1.0
    assert idle_record.outcome == "rejected" and idle_record.reason == "tests_failed"
    assert "still fail" in idle_record.detail and idle_record.verified is False


@pytest.mark.integration
def test_a_job_with_a_repository_share(tmp_path, local_ray, api_env, image) -> None:
    from synth.pipeline import run

    with ScriptedEndpoint(ScriptedWorld()) as server:
        config = scripted_config(
            tmp_path,
            server,
            environment_mix={"simulated": 0.0, "executable": 0.5, "docker": 0.5},
            tasks={
                "per_agent": 2,
                "blueprints": [],
                "repositories": repositories(share=1.0, projects=["tinyproj", "nosuchproj"]),
            },
        )
        manifest = run(config)
    counts = manifest.repositories
    assert counts["tinyproj"].kept > 0 and counts["tinyproj"].error is None
    assert counts["tinyproj"].tried == counts["tinyproj"].kept + sum(
        counts["tinyproj"].dropped_by_reason.values()
    )
    assert counts["nosuchproj"].kept == 0 and "nosuchproj" in (counts["nosuchproj"].error or "")
    assert manifest.tasks_by_source["docker"] == {"mutation": 4}
    assert manifest.reconciled and manifest.counts.trajectories == 8
    # the scripted agent calls run_shell and answers: the bugs stay, the tests decide
    assert manifest.by_environment["docker"] == {"rejected": 4}
    assert manifest.rejected_by_reason.get("tests_failed", 0) == 4
