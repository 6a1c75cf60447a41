"""Every environment kind played through its TRL environment class, as the roll-out loop
drives it: ``reset`` on the main thread, tools, user turns and ``finish`` as coroutines on
one event loop (each call in a task of its own, as the loop gathers them). Real MCP
processes, real Docker, the scripted endpoint as the simulated user and tool simulator."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import ValidationError

from llm.testing import Reply, ScriptedEndpoint
from rl.environments import (
    EpisodeSettings,
    SimulatorSettings,
    UserSettings,
    close_clients,
    environment_class,
    environment_for,
    shared_client,
    use_endpoints,
)
from rl.gyms import Sample, build_gym
from rl.gyms.tool_use import read_tasks
from sandboxes.mcp_env import MCPServerConfig
from sandboxes.toolsets import TOOLSETS
from tool_registry import ToolSpec

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "grpo" / "tasks" / "agentic-demo.jsonl"
NOTES = [sys.executable, str(ROOT / "tests" / "sandboxes" / "fixtures" / "stateful_server.py")]
NOTES_SERVER = MCPServerConfig(command=NOTES, state_tool="dump_state", deny=["call_log"])


def demo(task_id: str) -> dict[str, Any]:
    rows = [json.loads(line) for line in DEMO.read_text().splitlines()]
    return next(r for r in rows if r["id"] == task_id)


def spec_of(row: dict[str, Any]) -> dict[str, Any]:
    extras = ("toolset", "tools", "mcp_server", "system_prompt")
    return {k: v for k, v in row.items() if k not in extras}


def row_for(task: dict[str, Any]) -> dict[str, str]:
    """A dataset row as the gym writes it (``task`` column: the payload as JSON)."""
    return {"task": json.dumps({"task": task})}


def play(*coroutines: Any) -> list[Any]:
    """Run coroutines concurrently on one loop, each in its own task, then close clients."""

    async def main() -> list[Any]:
        try:
            return list(await asyncio.gather(*coroutines))
        finally:
            await close_clients()

    return asyncio.run(main())


@pytest.fixture
def scripted() -> Iterator[Any]:
    """Route every endpoint name to a scripted server the test fills in."""

    class Routed:
        server: ScriptedEndpoint

    routed = Routed()
    use_endpoints(lambda name, model, path: routed.server.endpoint(max_retries=0))
    yield routed
    use_endpoints(None)


def simulator_reply(request: dict[str, Any]) -> Reply:
    call = request["messages"][-1]["content"].split("## The call to answer")[-1]
    if "cancel_order(" in call:
        update = {"orders": {"A-17": {"status": "cancelled"}}}
        return Reply(content=json.dumps({"result": {"ok": True}, "state_update": update}))
    return Reply(content=json.dumps({"result": {"status": "processing"}, "state_update": {}}))


# ------------------------------------------------------------------- TRL's view
def test_hooks_are_not_tools_and_tools_are_coroutines() -> None:
    settings = EpisodeSettings(user=UserSettings())
    cls = environment_for("executable", "bank", TOOLSETS["bank"].specs(), settings)
    listed = {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}
    assert listed == {"reset", "get_balance", "transfer", "list_transfers"}
    env = cls()
    assert inspect.iscoroutinefunction(env.transfer)
    assert inspect.iscoroutinefunction(env.user_turn) and inspect.iscoroutinefunction(env.finish)
    single = environment_for("executable", "bank", TOOLSETS["bank"].specs())
    assert not hasattr(single(), "user_turn") and single is not cls
    assert environment_class(cls.key) is cls and environment_class(single.key) is single


def test_a_tool_that_cannot_be_a_method_is_refused() -> None:
    bad = ToolSpec(name="state", description="clashes", parameters={"type": "object"})
    with pytest.raises(ValueError, match="cannot be an environment method"):
        environment_for("simulated", "x", [bad])


# ------------------------------------------------------------------- executable
def test_concurrent_episodes_of_one_tool_set_keep_their_own_state() -> None:
    task = spec_of(demo("demo-exec"))
    cls = environment_for("executable", "bank", TOOLSETS["bank"].specs())
    first, second = cls(), cls()
    first.reset(**row_for(task))
    second.reset(**row_for(task))

    async def episode(env: Any, amount: float) -> None:
        await env.transfer(source="checking-1", destination="savings-2", amount=amount)
        await env.finish()

    play(episode(first, 10.0), episode(second, 70.0))
    assert first.state["accounts"]["checking-1"]["balance"] == 490.0
    assert second.state["accounts"]["checking-1"]["balance"] == 430.0


def test_the_tool_call_budget_answers_the_policy_with_an_error() -> None:
    cls = environment_for(
        "executable", "bank", TOOLSETS["bank"].specs(), EpisodeSettings(max_tool_calls=1)
    )
    env = cls()
    env.reset(**row_for(spec_of(demo("demo-exec"))))

    async def episode() -> list[str]:
        return [
            await env.get_balance(account="checking-1"),
            await env.get_balance(account="checking-1"),
        ]

    first, second = play(episode())[0]
    assert '"balance"' in first and second.startswith("error: tool-call budget exhausted")
    assert env.failure is None


# ------------------------------------------------------------------- simulated
def test_a_simulated_task_changes_the_simulators_state_and_earns_its_reward(
    scripted: Any,
) -> None:
    row = demo("demo-sim")
    specs = [ToolSpec.from_openai(t) for t in row["tools"]]
    cls = environment_for("simulated", "orders", specs, EpisodeSettings())
    env = cls()
    with ScriptedEndpoint(simulator_reply) as scripted.server:
        env.reset(**row_for(spec_of(row)))

        async def episode() -> str:
            answer = await env.cancel_order(order_id="A-17")
            await env.finish()
            return str(answer)

        (answer,) = play(episode())
    assert json.loads(answer) == {"ok": True}
    assert env.state["orders"]["A-17"]["status"] == "cancelled" and env.failure is None
    gym = build_gym("tool_use", {"path": str(DEMO), "eval_count": 0})
    sample = Sample(
        [], [{"role": "assistant", "content": "Cancelled A-17."}], {"task": spec_of(row)}
    )
    sample.environment = env
    assert gym.verify_batch([sample]) == [1.0]


def test_a_simulator_that_answers_garbage_fails_the_episode_and_its_reward_is_none(
    scripted: Any,
) -> None:
    row = demo("demo-sim")
    specs = [ToolSpec.from_openai(t) for t in row["tools"]]
    env = environment_for("simulated", "orders", specs, EpisodeSettings())()
    with ScriptedEndpoint(lambda request: Reply(content="sure, done!")) as scripted.server:
        env.reset(**row_for(spec_of(row)))
        (first,) = play(env.cancel_order(order_id="A-17"))
        (later,) = play(env.get_order(order_id="A-17"))
        calls = len(scripted.server.requests)
    assert first.startswith("error: the environment has failed") and "simulator" in first
    assert env.failure is not None and "\n" not in env.failure
    assert later.startswith("error: the environment has failed")
    assert len(scripted.server.requests) == calls  # a failed episode asks nothing more
    gym = build_gym("tool_use", {"path": str(DEMO), "eval_count": 0})
    sample = Sample([], [{"role": "assistant", "content": "Done."}], {"task": spec_of(row)}, env)
    assert gym.verify_batch([sample]) == [None]


def test_the_simulators_endpoint_is_configurable(scripted: Any) -> None:
    seen: list[tuple[str, str | None]] = []
    use_endpoints(
        lambda name, model, path: seen.append((name, model)) or scripted.server.endpoint()
    )
    row = demo("demo-sim")
    settings = EpisodeSettings(simulator=SimulatorSettings(endpoint="kimi-k2", model="instruct"))
    env = environment_for(
        "simulated", "orders", [ToolSpec.from_openai(row["tools"][1])], settings
    )()
    with ScriptedEndpoint(simulator_reply) as scripted.server:
        env.reset(**row_for(spec_of(row)))
        play(env.get_order(order_id="A-17"))
    assert seen == [("kimi-k2", "instruct")] and env.failure is None


def test_a_roles_checkpoint_reaches_the_runs_resolver(scripted: Any, tmp_path: Path) -> None:
    seen: list[tuple[str, str | None, Path | None]] = []
    use_endpoints(lambda *role: seen.append(role) or scripted.server.endpoint())
    with ScriptedEndpoint(simulator_reply) as scripted.server:
        asyncio.run(shared_client(UserSettings(model_path=tmp_path)))
    assert seen == [("embedded", None, tmp_path)]
    with pytest.raises(ValidationError, match="served by the embedded engine"):
        SimulatorSettings(endpoint="kimi-k2", model_path=tmp_path)


# ------------------------------------------------------------------- the user
def user_says(*turns: tuple[str, str]) -> list[Reply]:
    return [Reply(content=json.dumps({"message": m, "status": s})) for m, s in turns]


def test_the_user_reveals_a_hidden_fact_when_asked_then_is_satisfied(scripted: Any) -> None:
    task = spec_of(demo("ask-0"))
    settings = EpisodeSettings(user=UserSettings(max_user_turns=3))
    env = environment_for("executable", "bank", TOOLSETS["bank"].specs(), settings)()
    replies = user_says(("savings-9, please.", "continue"), ("Thanks!", "satisfied"))
    with ScriptedEndpoint(replies) as scripted.server:
        env.reset(**row_for(task))
        asked = [
            {"role": "user", "content": task["user_goal"]},
            {"role": "assistant", "content": "Which savings account do you mean?"},
        ]

        async def episode() -> list[Any]:
            first = await env.user_turn(asked)
            moved = await env.transfer(source="checking-1", destination="savings-9", amount=40)
            done = [*asked, {"role": "user", "content": first}]
            done.append({"role": "assistant", "content": f"Moved 40.00. {moved}"})
            second = await env.user_turn(done)
            await env.finish()
            return [first, second]

        first, second = play(episode())[0]
        prompt = scripted.server.requests[0]["messages"][-1]["content"]
    assert first == "savings-9, please." and second is None
    assert env.user_outcome == "satisfied" and env.user_turns == 2 and env.failure is None
    assert "savings account id: savings-9" in prompt and "Which savings account" in prompt
    assert env.state["accounts"]["savings-9"]["balance"] == 140.0


def test_the_user_stops_after_max_user_turns(scripted: Any) -> None:
    settings = EpisodeSettings(user=UserSettings(max_user_turns=1))
    env = environment_for("executable", "bank", TOOLSETS["bank"].specs(), settings)()
    with ScriptedEndpoint(user_says(("more?", "continue"), ("more!", "continue"))) as server:
        scripted.server = server
        env.reset(**row_for(spec_of(demo("ask-0"))))
        talk = [{"role": "assistant", "content": "Which account?"}]
        replies = play(env.user_turn(talk))
        replies += play(env.user_turn(talk))
    assert replies == ["more?", None] and env.user_outcome == "max_user_turns"
    assert len(server.requests) == 1


def test_a_user_model_that_answers_garbage_fails_the_episode(scripted: Any) -> None:
    settings = EpisodeSettings(user=UserSettings())
    env = environment_for("executable", "bank", TOOLSETS["bank"].specs(), settings)()
    with ScriptedEndpoint(lambda request: Reply(content="I am not JSON")) as scripted.server:
        env.reset(**row_for(spec_of(demo("ask-0"))))
        (reply,) = play(env.user_turn([{"role": "assistant", "content": "Which account?"}]))
    assert reply is None and env.user_outcome == "failed"
    assert env.failure is not None and env.failure.startswith("user simulator")


# ------------------------------------------------------------------------ MCP
def notes_task(notes: list[str]) -> dict[str, Any]:
    task = spec_of(demo("demo-mcp"))
    return {**task, "id": f"notes-{len(notes)}", "initial_state": {"notes": notes}}


def test_concurrent_mcp_episodes_of_one_server_see_only_their_own_notes() -> None:
    specs = [
        ToolSpec(
            name="add_note",
            description="Add a note.",
            parameters={
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        ),
        ToolSpec(name="whoami", description="Who answers.", parameters={"type": "object"}),
    ]
    cls = environment_for("mcp", "notes", specs, EpisodeSettings(timeout_s=30), server=NOTES_SERVER)
    envs = [cls() for _ in range(3)]
    for index, env in enumerate(envs):
        env.reset(**row_for(notes_task([f"seed-{index}"])))

    async def episode(env: Any, index: int) -> int:
        # each call in its own task, as the roll-out loop gathers them
        await asyncio.gather(env.add_note(text=f"mine-{index}"))
        who = json.loads(await asyncio.create_task(env.whoami()))
        await env.finish()
        return int(who["pid"])

    pids = play(*(episode(env, i) for i, env in enumerate(envs)))
    assert [env.state for env in envs] == [{"notes": [f"seed-{i}", f"mine-{i}"]} for i in range(3)]
    assert len(set(pids)) == 3 and all(env.failure is None for env in envs)
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )  # finish stopped every server


def test_an_mcp_server_that_dies_mid_episode_fails_it() -> None:
    specs = [ToolSpec(name="whoami", description="Who answers.", parameters={"type": "object"})]
    env = environment_for(
        "mcp", "notes", specs, EpisodeSettings(timeout_s=20), server=NOTES_SERVER
    )()
    env.reset(**row_for(notes_task([])))

    async def episode() -> str:
        who = json.loads(await env.whoami())
        os.kill(int(who["pid"]), signal.SIGKILL)
        reply = await env.whoami()
        await env.finish()
        await env.finish()  # twice is harmless
        return str(reply)

    (reply,) = play(episode())
    assert reply.startswith("error: the environment has failed")
    assert env.failure is not None and "whoami" in env.failure


# --------------------------------------------------------------------- Docker
def test_docker_tools_run_python_and_shell_and_tests_score_the_final_code(
    docker_sandbox: Any,
) -> None:
    from rl.environments import docker_specs

    row = demo("demo-docker")
    cls = environment_for("docker", "code", docker_specs(), sandbox=lambda: docker_sandbox)
    good, bad = cls(), cls()
    for env in (good, bad):
        env.reset(**row_for(spec_of(row)))

    async def episode(env: Any) -> list[str]:
        ran = await env.run_python(code="print(1 + 2)")
        shell = await env.run_shell(command="echo hi && pwd")
        await env.finish()
        return [ran, shell]

    (ran, shell), _ = play(episode(good), episode(bad))
    assert json.loads(ran)["stdout"] == "3\n" and json.loads(shell)["stdout"] == "hi\n/work\n"
    from rl.gyms.base import Resources

    gym = build_gym(
        "tool_use", {"path": str(DEMO), "eval_count": 0}, Resources(sandbox=lambda: docker_sandbox)
    )
    answers = ["def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b"]
    samples = [
        Sample(
            [],
            [{"role": "assistant", "content": f"```python\n{code}\n```"}],
            {"task": spec_of(row)},
            env,
        )
        for code, env in zip(answers, (good, bad), strict=True)
    ]
    assert gym.verify_batch(samples) == [1.0, 0.0]


def test_a_sandbox_that_gives_no_answer_fails_the_episode(sandbox_image: str) -> None:
    from rl.environments import docker_specs
    from sandboxes.docker import DockerSandbox, Limits

    with DockerSandbox(sandbox_image, pool_size=1, limits=Limits(timeout_s=1.0)) as box:
        cls = environment_for("docker", "code", docker_specs(), sandbox=lambda: box)
        env = cls()
        env.reset(**row_for(spec_of(demo("demo-docker"))))
        for container in box.containers:  # freeze the pool: its agent cannot answer
            container.pause()
        (reply,) = play(env.run_python(code="print(1)"))
    assert reply.startswith("error: the environment has failed")
    assert env.failure is not None and "no answer" in env.failure


# ----------------------------------------------------------- loading every kind
def test_every_kind_loads_from_a_synth_rl_prompts_parquet(tmp_path: Path) -> None:
    from synth.manifest import export_rl_prompts
    from synth.schema import AgentSpec, TaskSpec
    from synth.store import RunStore

    rows = {r["id"]: r for r in map(json.loads, DEMO.read_text().splitlines())}
    notes_tools = [
        ToolSpec(
            name="add_note",
            description="Add a note.",
            parameters={
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        )
    ]
    kinds = {
        "demo-exec": dict(toolset="bank", tools=TOOLSETS["bank"].specs()),
        "demo-sim": dict(tools=[ToolSpec.from_openai(t) for t in rows["demo-sim"]["tools"]]),
        "demo-mcp": dict(tools=notes_tools, mcp_command=NOTES),
        "demo-docker": dict(tools=[]),
    }
    agents, tasks = [], []
    for task_id, extra in kinds.items():
        spec = TaskSpec.model_validate({**spec_of(rows[task_id]), "agent_id": f"a-{task_id}"})
        if spec.environment == "mcp":
            spec = spec.model_copy(update={"domain": "notes"})
        tasks.append(spec)
        agents.append(
            AgentSpec(
                id=f"a-{task_id}",
                name=task_id,
                domain=spec.domain,
                environment=spec.environment,
                system_prompt=f"You are {task_id}.",
                persona="helpful",
                **extra,
            )
        )
    path = export_rl_prompts(RunStore(tmp_path), agents, tasks)
    options = {
        "path": str(path),
        "eval_count": 0,
        "mcp_servers": [{"name": "notes", **NOTES_SERVER.model_dump()}],
        "user": {"endpoint": "embedded", "max_user_turns": 2},
    }
    gym = build_gym("tool_use", options)
    loaded = {json.loads(r["task"])["task"]["id"]: r for r in gym.rows("train")}
    assert set(loaded) == set(kinds)
    for task_id, row in loaded.items():
        cls = environment_class(row["environment"])
        assert cls.kind == rows[task_id]["environment"]
        assert hasattr(cls, "user_turn") and cls.settings.user is not None
    assert loaded["demo-mcp"]["prompt"][0] == {"role": "system", "content": "You are demo-mcp."}
    mcp = environment_class(loaded["demo-mcp"]["environment"])()
    mcp.reset(**loaded["demo-mcp"])

    async def note() -> str:
        reply = await mcp.add_note(text="hello")
        await mcp.finish()
        return str(reply)

    assert play(note()) == ["1 notes"] and mcp.state == {"notes": ["hello"]}
    only = read_tasks(path, gym.options.model_copy(update={"kinds": ["docker"]}))
    assert [t.task.id for t in only] == ["demo-docker"]


def test_an_unplayable_task_is_skipped_with_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lost = {**demo("demo-mcp"), "id": "lost-mcp", "mcp_server": "nowhere"}
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(demo("demo-exec")) + "\n" + json.dumps(lost) + "\n")
    tasks = read_tasks(path)
    assert [t.task.id for t in tasks] == ["demo-exec"]
    assert "lost-mcp" in caplog.text and "no MCP server named 'nowhere'" in caplog.text


def test_the_demo_tasks_load_one_of_each_kind_and_the_pypi_time_server_answers() -> None:
    tasks = read_tasks(DEMO)
    kinds = {t.task.id: environment_class(t.environment).kind for t in tasks}
    assert set(kinds.values()) == {"executable", "simulated", "mcp", "docker"}
    mcp = next(t for t in tasks if t.task.id == "demo-mcp")
    env = environment_class(mcp.environment)()
    env.reset(task=json.dumps({"task": mcp.task.model_dump(mode="json")}))

    async def episode() -> str:
        reply = await env.get_current_time(timezone="Asia/Tokyo")
        await env.finish()
        return str(reply)

    (reply,) = play(episode())
    assert json.loads(reply)["timezone"] == "Asia/Tokyo" and env.failure is None


def test_a_users_tool_set_by_import_path_is_an_rl_environment(monkeypatch) -> None:
    """``toolset: user_tools:Inventory`` in a task row plays the user's own class."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "synth"))
    cls = environment_class("user_tools:Inventory")
    listed = {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}
    assert listed == {"reset", "get_item", "restock"}
    task = {
        **spec_of(demo("demo-exec")),
        "initial_state": {"items": {"A-100": {"quantity": 2}}},
        "checks": {"expected_state": {"items": {"A-100": {"quantity": 5}}}},
    }
    env = cls()
    env.reset(**row_for(task))

    async def episode() -> None:
        await env.restock(sku="A-100", quantity=3)
        await env.finish()

    play(episode())
    assert env.state == {"items": {"A-100": {"quantity": 5}}}
    with pytest.raises(KeyError, match="no environment registered"):
        environment_class("user_tools:Missing")
