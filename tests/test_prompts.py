"""Every prompt template under snapshot: each one is rendered through the code that sends
it (a real client against the scripted endpoint where a model is asked), with fixed
inputs, and compared with ``tests/snapshots/prompts/<template>.txt``. A prompt therefore
never changes by accident; to change one on purpose, rerun with
``SUMMIT_UPDATE_SNAPSHOTS=1`` and review the snapshot's diff. A template without a
snapshot fails the suite."""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from llm import ChatClient, FunctionCall, ToolCall
from llm.testing import ScriptedEndpoint
from rubrics import Criterion, Rubric
from tool_registry import ToolSpec

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "prompts"
ELSEWHERE = {
    # snapshot-tested by `python -m rubrics render` (tests/rubrics/test_cli.py)
    "rubrics/prompts/judge.jinja",
    "rubrics/prompts/pair.jinja",
    # the HTML report, not a prompt (tests/synth/test_outputs.py reads it)
    "synth/html/report.html.jinja",
}
PACKAGES = ("llm", "tool_registry", "sandboxes", "rubrics", "synth", "rl")

TOOLS = [
    ToolSpec(
        name="find_flights",
        description="Search flights between two airports on a date.",
        parameters={
            "type": "object",
            "properties": {
                "origin": {"type": "string"},
                "destination": {"type": "string"},
                "date": {"type": "string", "description": "YYYY-MM-DD"},
            },
            "required": ["origin", "destination", "date"],
        },
    ),
    ToolSpec(
        name="book_flight",
        description="Book a flight by its id.",
        parameters={
            "type": "object",
            "properties": {"flight_id": {"type": "string"}},
            "required": ["flight_id"],
        },
        side_effect="write",
    ),
]


def agent() -> Any:
    from synth.schema import AgentSpec

    return AgentSpec(
        id="agent-1",
        name="Skyline",
        domain="travel booking",
        environment="simulated",
        system_prompt="You book flights for travellers.",
        persona="a patient travel agent who confirms before booking",
        tools=TOOLS,
    )


def task() -> Any:
    from synth.schema import TaskSpec

    return TaskSpec(
        id="task-1",
        agent_id="agent-1",
        domain="travel booking",
        difficulty="clarify",
        environment="simulated",
        user_goal="Book me the cheapest flight from Oslo to Rome next Friday.",
        user_persona="a student on a budget",
        hidden_info={"date": "2026-12-04", "budget": "120 EUR"},
        rubric=Rubric(
            id="task.1",
            kind="task",
            description="books the flight",
            criteria=[Criterion(id="booked", description="A flight is booked.")],
        ),
    )


async def asked(reply: str | Callable[[dict[str, Any]], str], play: Any) -> str:
    """The last message of the first request ``play(client)`` sends."""
    answer = reply if callable(reply) else (lambda _request: reply)
    async with ScriptedEndpoint(answer) as server, ChatClient(server.endpoint()) as client:
        await play(client)
    assert len(server.requests) >= 1
    return str(server.requests[0]["messages"][-1]["content"])


async def synth_agent(tmp_path: Path) -> str:
    from synth.agents import write_agent

    draft = json.dumps({"name": "Skyline", "system_prompt": "You book flights. " * 3})
    return await asked(draft, lambda client: write_agent(agent(), client, seed=1))


async def synth_task(tmp_path: Path) -> str:
    from synth.tasks import make_tasks

    draft = json.dumps({"user_goal": "Book a flight to Rome.", "success_criteria": ["booked"]})
    return await asked(draft, lambda client: make_tasks(agent(), 1, ["multi_step"], client, 3))


async def synth_user(tmp_path: Path) -> str:
    from synth.user import UserSimulator

    turns = [
        {"role": "user", "content": task().user_goal},
        {"role": "assistant", "content": "Which date would you like to fly?"},
    ]
    reply = json.dumps({"message": "Friday the 4th.", "status": "continue"})
    return await asked(reply, lambda client: UserSimulator(task(), client).reply(turns))


async def simulator(tmp_path: Path) -> str:
    from sandboxes.simulated import SimulatedEnvironment

    async def play(client: ChatClient) -> None:
        env = SimulatedEnvironment(TOOLS, client)
        await env.reset({"initial_state": {"bookings": []}})
        arguments = json.dumps({"origin": "OSL", "destination": "FCO", "date": "2026-12-04"})
        await env.call(
            ToolCall(id="c1", function=FunctionCall(name=TOOLS[0].name, arguments=arguments))
        )

    return await asked(json.dumps({"result": {"flights": []}}), play)


BANK_STATE = {
    "accounts": {
        "checking-1": {"balance": 900.0, "daily_limit": 1000.0, "sent_today": 0.0},
        "savings-2": {"balance": 100.0, "daily_limit": 1000.0, "sent_today": 0.0},
    },
    "transfers": [],
}
BLUEPRINT = {
    "user_goal": "Move 40 from checking-1 to savings-2, please.",
    "user_persona": "a careful saver",
    "hidden_info": {},
    "success_criteria": ["40 moved from checking-1 to savings-2 once"],
    "actions": [
        {
            "tool": "transfer",
            "arguments": {"source": "checking-1", "destination": "savings-2", "amount": 40},
        }
    ],
}


async def synth_blueprint(tmp_path: Path) -> str:
    from sandboxes.executable import ExecutableEnvironment
    from sandboxes.toolsets import BankLedger
    from synth.blueprints import BlueprintPlan, write_blueprint
    from synth.schema import AgentSpec

    async def state(_rng: Any) -> dict[str, Any]:
        return BANK_STATE

    bank = AgentSpec(
        **{**agent().model_dump(), "tools": BankLedger.specs(), "environment": "executable"}
    )
    plan = BlueprintPlan(lambda seed: ExecutableEnvironment(BankLedger), None, state)
    return await asked(
        json.dumps(BLUEPRINT),
        lambda client: write_blueprint(
            bank, "single", "one tool call answers it", random.Random(1), client, plan
        ),
    )


async def synth_blueprint_check(tmp_path: Path) -> str:
    from synth.blueprints import Blueprint, check_agreement

    blueprint = Blueprint.model_validate(BLUEPRINT)
    result = '{"source": "checking-1", "destination": "savings-2", "amount": 40.0}'
    reply = json.dumps({"agree": True, "reason": "the call does what was asked"})
    return await asked(reply, lambda client: check_agreement(client, blueprint, [result], 1))


async def synth_problem(tmp_path: Path) -> str:
    from synth.problems import write_problems

    answer = {
        "entry_point": "add",
        "description": "Write add(a, b) that returns the sum of a and b.",
        "solution": "def add(a, b):\n    return a + b\n",
        "tests": "assert add(2, 3) == 5",
    }
    return await asked(json.dumps(answer), lambda client: write_problems(client, 1, seed=3))


async def synth_swe_issue(tmp_path: Path) -> str:
    from synth.swe_tasks import write_issue

    failing = ("tests.test_stats.MeanTest.test_mean_of_one",)
    report = (
        "FAIL: tests.test_stats.MeanTest.test_mean_of_one\n"
        "Traceback (most recent call last):\n"
        '  File "/work/project/tests/test_stats.py", line 11, in test_mean_of_one\n'
        "    self.assertEqual(mean([5]), 5)\n"
        "AssertionError: 6.0 != 5"
    )
    reply = json.dumps({"title": "mean of one value is wrong", "body": "mean([5]) gives 6.0"})
    return await asked(reply, lambda client: write_issue(client, "tinyproj", report, failing))


Renderer = Callable[[Path], Awaitable[str]]
"""A template's text, rendered by the code that sends it (given a scratch directory)."""


def evolution(template: str) -> Renderer:
    async def render(tmp_path: Path) -> str:
        from tool_registry.evolution import Evolution, EvolveConfig

        seeds = tmp_path / "seeds.yaml"
        seeds.write_text("categories:\n  - {name: travel, description: trips and stays}\n")
        config = EvolveConfig(
            seeds=seeds, domains_per_category=1, tools_per_domain=1, near_duplicates=False
        )

        def planner(request: dict[str, Any]) -> str:
            if "Domain:" not in request["messages"][-1]["content"]:
                domain = {"name": "rail passes", "description": "Passes for trains in a country."}
                return json.dumps({"domains": [domain]})
            tool = {
                "name": "buy_pass",
                "description": "Buy a rail pass for a traveller.",
                "side_effect": "write",
                "returns": "the pass id",
                "parameters": [],
            }
            return json.dumps({"tools": [tool]})

        async with ScriptedEndpoint(planner) as server, ChatClient(server.endpoint()) as client:
            await Evolution(config, client, tmp_path / "tools.jsonl").run()
        prompts = [str(r["messages"][0]["content"]) for r in server.requests]
        assert len(prompts) == 2, "a reply was refused: the follow-up would hide the prompt"
        (chosen,) = [p for p in prompts if ("Domain:" in p) == (template == "tools")]
        return chosen

    return render


async def critic_exemplars(tmp_path: Path) -> str:
    from rl.critique.agreement import VerifiedPair
    from rl.critique.critics import ExemplarBank

    bank = ExemplarBank(seed=0)
    bank.add([VerifiedPair(prompt="What is 2 + 3?", better="5", worse="6", domain="math")])
    return bank.render("math", 2)


async def critic_local_pair(tmp_path: Path) -> str:
    from llm.embedded.model import load_tokenizer
    from rl.critique.local import LocalCritic

    critic = LocalCritic(None, load_tokenizer())
    messages = critic.messages("What is 2 + 3?", "5", "It is six.", ["core"])
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


RENDERERS: dict[str, Renderer] = {
    "synth/prompts/agent.jinja": synth_agent,
    "synth/prompts/task.jinja": synth_task,
    "synth/prompts/blueprint.jinja": synth_blueprint,
    "synth/prompts/blueprint_check.jinja": synth_blueprint_check,
    "synth/prompts/user.jinja": synth_user,
    "synth/prompts/swe_issue.jinja": synth_swe_issue,
    "synth/prompts/problem.jinja": synth_problem,
    "sandboxes/prompts/simulator.jinja": simulator,
    "tool_registry/prompts/domains.jinja": evolution("domains"),
    "tool_registry/prompts/tools.jinja": evolution("tools"),
    "rl/critique/exemplars.jinja": critic_exemplars,
    "rl/critique/local_pair.jinja": critic_local_pair,
}


def templates() -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.jinja")
    }


def test_every_template_has_a_snapshot_test() -> None:
    assert templates() - ELSEWHERE == set(RENDERERS), "a prompt template without a snapshot test"


@pytest.mark.parametrize("template", sorted(RENDERERS))
async def test_the_prompt_matches_its_snapshot(template: str, tmp_path: Path) -> None:
    text = await RENDERERS[template](tmp_path)
    # the nonce of a block marker is derived from the content: stable, but not the point
    text = re.sub(r"\b[0-9a-f]{12,}\b", "<hex>", text)
    snapshot = SNAPSHOTS / (template.replace("/", "__").removesuffix(".jinja") + ".txt")
    if os.environ.get("SUMMIT_UPDATE_SNAPSHOTS") == "1":
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(text)
    assert snapshot.exists(), f"no snapshot {snapshot.name}: rerun with SUMMIT_UPDATE_SNAPSHOTS=1"
    assert text == snapshot.read_text(), (
        f"{template} renders differently: rerun with SUMMIT_UPDATE_SNAPSHOTS=1 and review"
    )
