"""Benchmark verifiable task synthesis: blueprints, diversity, SWE tasks, decontamination.

In one run, side by side:

- **Blueprints validated by execution** (``synth.blueprints``) on the scripted endpoint:
  a seeded generator writes blueprints for the three executable tool sets at every
  difficulty, a known share of them with one planted fault each (a tool the agent lacks,
  an argument of the wrong type, a call that fails, only a read, one call for a multi-step
  task, calls that contradict the goal); the replay and the judge keep or reject them.
  Reported: the share kept, rejects by reason, and whether each planted fault was caught
  for its own reason (and no sound blueprint rejected). With ``--embedded`` (not with
  ``--quick``) the embedded model writes blueprints too: what a 135M model gets kept.
- **Diversity of blueprint tasks against template tasks**, the same count of each for
  the same tool sets: near-duplicate rate of the goals (MiniLM, cosine ≥ 0.9) and distinct
  call patterns per 100 tasks.
- **SWE tasks** (``synth.swe_tasks``): mutants kept per mutant tried on the fixture
  project in real Docker, and seconds to build one SWE environment from a warm image.
- **Decontamination** (``synth.decontam``): precision and recall on HumanEval prompts
  planted (reformatted, paraphrased, embedded) among unrelated task texts.

    python bench/tasks.py [--quick] [--json] [--embedded]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm import ChatClient
from llm.testing import Reply, ScriptedEndpoint
from sandboxes.executable import ExecutableEnvironment
from sandboxes.toolsets import TOOLSETS
from synth.blueprints import REJECT_REASONS, BlueprintPlan, BlueprintRejected, write_blueprint
from synth.schema import AgentSpec, Difficulty
from synth.tasks import DIFFICULTY_TEXT
from synth.verifiable import TOOLSET_TASKS, TaskDraft

DIFFICULTIES: tuple[Difficulty, ...] = ("single", "multi_step", "clarify")
UNPLANTED = ("generation_failed", "degenerate", "judge_error", "duplicate")
FAULTS = tuple(r for r in REJECT_REASONS if r not in UNPLANTED)
"""The reject reasons a blueprint is planted with (the others come from the generator's
or the judge's failing, or from repeating an earlier one)."""
FAULT_SHARE = 0.4


# ------------------------------------------------------------- the scripted generator
def sound(toolset: str, state: dict[str, Any], difficulty: str, rng: random.Random) -> dict:
    """A blueprint that carries out its goal on ``state``, in varied words."""
    persona = rng.choice(["a student", "a nurse on night shifts", "a retired teacher", "a CFO"])
    if toolset == "bank":
        source, target = rng.sample(sorted(state["accounts"]), 2)
        amount = rng.randrange(10, 90, 5)
        move = {"source": source, "destination": target, "amount": amount}
        phrasing = rng.choice(
            [
                f"Send {amount} from {source} over to {target}.",
                f"I owe {target} {amount}; pay it out of {source}.",
                f"Could you shift {amount} dollars from {source} into {target}?",
                f"Top up {target} with {amount} taken from {source}.",
            ]
        )
        if difficulty == "multi_step":
            goal = f"Check what {source} holds, then move {amount} of it to {target}."
            actions = [
                {"tool": "get_balance", "arguments": {"account": source}},
                {"tool": "transfer", "arguments": move},
            ]
            return _blueprint(goal, persona, {}, actions, f"{amount} moved to {target}")
        if difficulty == "clarify":
            goal = f"Pay my landlord {amount} from {source}, please."
            hidden = {"landlord's account": target}
            actions = [{"tool": "transfer", "arguments": move}]
            return _blueprint(goal, persona, hidden, actions, f"{amount} paid to {target}")
        actions = [{"tool": "transfer", "arguments": move}]
        return _blueprint(phrasing, persona, {}, actions, f"{amount} moved to {target}")
    if toolset == "calendar":
        day = next(iter(state["events"].values()))["start"][:10]
        hour = rng.choice([11, 12, 16, 17])
        title = rng.choice(["Budget review", "Call with Ana", "Yoga", "Vet visit", "Demo prep"])
        start, end = f"{day}T{hour}:00", f"{day}T{hour}:30"
        create = {"title": title, "start": start, "end": end}
        if difficulty == "multi_step":
            event = sorted(state["events"])[0]
            goal = f"Look at my day {day} and push {state['events'][event]['title']} to {hour}:00."
            actions = [
                {"tool": "list_events", "arguments": {"day": day}},
                {"tool": "reschedule_event", "arguments": {"event_id": event, **create}},
            ]
            actions[1]["arguments"].pop("title")
            return _blueprint(goal, persona, {}, actions, "the event moved")
        if difficulty == "clarify":
            goal = f"Put '{title}' in my calendar on {day}."
            hidden = {"time": f"{hour}:00"}
            actions = [{"tool": "create_event", "arguments": create}]
            return _blueprint(goal, persona, hidden, actions, f"{title} booked")
        goal = rng.choice(
            [
                f"Book '{title}' on {day} at {hour}:00 for half an hour.",
                f"Block {hour}:00-{hour}:30 on {day} for {title}.",
                f"Add {title} to {day}, {hour}:00 to {hour}:30.",
            ]
        )
        return _blueprint(
            goal, persona, {}, [{"tool": "create_event", "arguments": create}], "booked"
        )
    folder, stem = rng.choice(["notes", "final", "archive"]), rng.choice(["a", "b", "c"])
    path = f"/{folder}/{stem}{rng.randint(1, 99)}.txt"
    text = rng.choice(["pick up keys", "renew the lease", "water plants", "email Omar"])
    write = {"path": path, "content": text}
    if difficulty == "multi_step":
        origin = sorted(state["files"])[0]
        goal = f"Read {origin} and copy it to {path}."
        actions = [
            {"tool": "read_file", "arguments": {"path": origin}},
            {"tool": "write_file", "arguments": {"path": path, "content": state["files"][origin]}},
        ]
        return _blueprint(goal, persona, {}, actions, f"{path} is a copy")
    if difficulty == "clarify":
        goal = f"Save my reminder into {path}."
        actions = [{"tool": "write_file", "arguments": write}]
        return _blueprint(goal, persona, {"reminder": text}, actions, f"{path} holds it")
    goal = rng.choice([f"Create {path} saying: {text}", f"Write '{text}' to {path}."])
    return _blueprint(goal, persona, {}, [{"tool": "write_file", "arguments": write}], "saved")


def _blueprint(goal: str, persona: str, hidden: dict, actions: list, criterion: str) -> dict:
    return {
        "user_goal": goal,
        "user_persona": persona,
        "hidden_info": hidden,
        "success_criteria": [criterion],
        "actions": actions,
    }


def reads(toolset: str, state: dict[str, Any]) -> dict[str, Any]:
    """A call that only reads a record the state has."""
    if toolset == "bank":
        return {"tool": "get_balance", "arguments": {"account": sorted(state["accounts"])[0]}}
    if toolset == "calendar":
        day = next(iter(state["events"].values()))["start"][:10]
        return {"tool": "list_events", "arguments": {"day": day}}
    return {"tool": "read_file", "arguments": {"path": sorted(state["files"])[0]}}


def planted(
    blueprint: dict[str, Any], fault: str, toolset: str, state: dict[str, Any]
) -> dict[str, Any]:
    """``blueprint`` with one fault of kind ``fault``, everything else left sound (the
    number of calls its difficulty needs, a hidden fact still used)."""
    made = json.loads(json.dumps(blueprint))
    last = made["actions"][-1]
    arguments = last["arguments"]
    if fault == "unknown_tool":
        last["tool"] = last["tool"] + "_now"
    elif fault == "invalid_arguments":
        arguments[next(iter(arguments))] = [1, 2]  # a list where a string or number goes
    elif fault == "call_failed":
        if last["tool"] == "transfer":
            arguments["amount"] = 10_000_000  # more than any balance
        elif last["tool"] == "create_event":
            arguments["start"], arguments["end"] = arguments["end"], arguments["start"]
        elif last["tool"] == "reschedule_event":
            arguments["event_id"] = "ev-99"
        else:  # write_file over a file that exists, without overwrite
            arguments["path"] = sorted(state["files"])[0]
    elif fault == "no_effect":
        made["actions"] = [reads(toolset, state) for _ in made["actions"]]
    elif fault == "difficulty_mismatch":
        made["actions"] = made["actions"] * 2 if len(made["actions"]) == 1 else made["actions"][1:]
    elif fault == "judge_disagrees":
        made["user_goal"] = "Please just tell me what my options are, do not change anything."
    return made


PLANTABLE: dict[str, tuple[str, ...]] = {
    "single": FAULTS,
    "multi_step": FAULTS,
    "clarify": ("unknown_tool", "invalid_arguments", "call_failed", "judge_disagrees"),
}
"""Faults that can be planted while the rest of the blueprint fits its difficulty (a
clarify blueprint must still use its hidden fact, which a read-only call cannot)."""


def state_key(state: dict[str, Any]) -> str:
    """The state as the prompt shows it (key order included: it is part of the prompt)."""
    return json.dumps(state, ensure_ascii=False)


def scripted_generator(toolsets: dict[str, str]) -> Any:
    """Responder: blueprints, a seeded share with a planted fault (recorded in
    ``respond.planted`` by tool set, difficulty and initial state), and a judge that
    disagrees when a goal forbids any change."""
    planted_by: dict[tuple[str, str, str], str] = {}

    def respond(request: dict[str, Any]) -> Reply:
        fmt = (request.get("response_format") or {}).get("json_schema") or {}
        prompt = str(request["messages"][-1]["content"])
        if fmt.get("name") == "Agreement":
            forbids = "do not change anything" in prompt
            return Reply(content=json.dumps({"agree": not forbids, "reason": "scripted"}))
        state = json.loads(prompt.split("before the task starts (JSON):\n")[1].split("\n")[0])
        difficulty = prompt.split("Difficulty: ")[1].split(" ")[0]
        toolset = toolsets[prompt.split("The assistant: ")[1].split(" ")[0]]
        rng = random.Random(prompt)
        made = sound(toolset, state, difficulty, rng)
        fault = rng.choice(PLANTABLE[difficulty]) if rng.random() < FAULT_SHARE else None
        if fault:
            made = planted(made, fault, toolset, state)
        planted_by[(toolset, difficulty, state_key(state))] = fault or ""
        return Reply(content=json.dumps(made))

    respond.planted = planted_by  # type: ignore[attr-defined]
    return respond


# ----------------------------------------------------------------------- the measures
def agents() -> dict[str, AgentSpec]:
    return {
        name: AgentSpec(
            id=f"agent-{name}",
            name=f"{name}-desk",
            domain=name,
            environment="executable",
            system_prompt="You help.",
            persona="careful",
            tools=cls.specs(),
            toolset=name,
        )
        for name, cls in TOOLSETS.items()
    }


Outcome = tuple[str, str, str, "TaskDraft | str"]
"""(tool set, difficulty, initial state's key, the draft kept or the reject reason)."""


async def write_all(client: ChatClient, judge: ChatClient | None, per_kind: int) -> list[Outcome]:
    """``per_kind`` blueprints per tool set and difficulty, validated; in a fixed order
    (duplicates are decided in that order, as the tasks stage does)."""
    seen: set[str] = set()

    async def one(name: str, agent: AgentSpec, difficulty: Difficulty, k: int) -> Outcome:
        toolset = TOOLSETS[name]
        given: dict[str, Any] = {}

        async def state(rng: random.Random) -> dict[str, Any]:
            given.update(toolset.sample_state(rng))
            return given

        plan = BlueprintPlan(lambda seed: ExecutableEnvironment(toolset), judge, state, seen=seen)
        rng = random.Random(f"{name}:{difficulty}:{k}")
        try:
            draft = await write_blueprint(
                agent, difficulty, DIFFICULTY_TEXT[difficulty], rng, client, plan
            )
        except BlueprintRejected as rejected:
            return name, difficulty, state_key(given), rejected.reason
        return name, difficulty, state_key(given), draft

    written = await asyncio.gather(
        *(
            one(name, agent, difficulty, k)
            for name, agent in agents().items()
            for difficulty in DIFFICULTIES
            for k in range(per_kind)
        )
    )
    deduped = BlueprintPlan(lambda seed: ExecutableEnvironment(TOOLSETS["bank"]), None, None)
    deduped.seen = seen
    return [
        (n, d, k, "duplicate" if isinstance(r, TaskDraft) and not deduped.claim(r) else r)
        for n, d, k, r in written
    ]


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    drafts = [r for *_, r in outcomes if isinstance(r, TaskDraft)]
    reasons = Counter(r for *_, r in outcomes if isinstance(r, str))
    return {
        "tried": len(outcomes),
        "kept": len(drafts),
        "kept_fraction": len(drafts) / len(outcomes) if outcomes else 0.0,
        "rejects": dict(reasons.most_common()),
        "drafts": drafts,
    }


def blueprints_scripted(per_kind: int) -> dict[str, Any]:
    toolsets = {f"{name}-desk": name for name in TOOLSETS}
    generator = scripted_generator(toolsets)

    async def go() -> list[Outcome]:
        with ScriptedEndpoint(generator) as server:
            async with ChatClient(server.endpoint(max_retries=1)) as client:
                return await write_all(client, client, per_kind)

    outcomes = asyncio.run(go())
    figures = summarise(outcomes)
    right = wrong_reason = missed = sound_kept = sound_total = 0
    for name, difficulty, key, result in outcomes:
        fault = generator.planted.get((name, difficulty, key), "")
        got = "kept" if isinstance(result, TaskDraft) else result
        if not fault:
            sound_total += 1
            sound_kept += got in ("kept", "duplicate")
        elif got == fault:
            right += 1
        elif got == "kept":
            missed += 1
        else:
            wrong_reason += 1
    figures.update(
        planted=right + wrong_reason + missed,
        planted_caught_right_reason=right,
        planted_caught_other_reason=wrong_reason,
        planted_missed=missed,
        sound=sound_total,
        sound_kept=sound_kept,
    )
    return figures


def blueprints_embedded(per_kind: int) -> dict[str, Any]:
    """The embedded model writes and judges the blueprints (the demo's generator)."""
    from llm.embedded import EmbeddedServers

    async def go(servers: EmbeddedServers) -> list[Outcome]:
        async with ChatClient(servers.endpoint(None)) as client:
            return await write_all(client, client, per_kind)

    with EmbeddedServers() as servers:
        figures = summarise(asyncio.run(go(servers)))
    return figures


def template_drafts(per_kind: int) -> list[TaskDraft]:
    return [
        TOOLSET_TASKS[name](random.Random(f"{name}:{difficulty}:{k}"), difficulty)
        for name in TOOLSETS
        for difficulty in DIFFICULTIES
        for k in range(per_kind)
    ]


def pattern(draft: TaskDraft) -> tuple[str, ...]:
    if draft.checks.actions:
        return tuple(str(a["tool"]) for a in draft.checks.actions)
    return tuple(draft.expected_tools)


def diversity(blueprints: list[TaskDraft], templates: list[TaskDraft]) -> dict[str, Any]:
    """The same count of each: near-duplicate goals and call patterns per 100 tasks."""
    from synth.diversity import near_dup_rate
    from tool_registry.dedup import default_embed

    count = min(len(blueprints), len(templates))
    figures: dict[str, Any] = {"compared": count}
    for label, drafts in (("blueprint", blueprints[:count]), ("template", templates[:count])):
        goals = [d.user_goal for d in drafts]
        figures[f"near_dup_rate_{label}"] = near_dup_rate(goals, default_embed) if count else 0.0
        figures[f"call_patterns_per_100_{label}"] = (
            100 * len({pattern(d) for d in drafts}) / count if count else 0.0
        )
    return figures


FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "swe" / "tinyproj"
BENCH_IMAGE = "summit-swe-bench:latest"


def swe(quick: bool) -> dict[str, Any]:
    """Mutants kept per mutant tried, and seconds to start one SWE episode from a warm
    image: on the fixture project (an image built here), and without ``--quick`` on the
    real projects of ``summit-swe:latest`` where it exists."""
    from statistics import median

    from sandboxes.docker import engine, ensure_image, image_exists
    from sandboxes.swe_container import SWE_IMAGE
    from sandboxes.swe_image import ProjectSource, build_swe_image
    from synth.swe_tasks import build_swe_tasks, swe_env_seconds, swe_yield

    async def measure(project: str, image: str, mutants: int) -> dict[str, Any]:
        started = time.perf_counter()
        kept, dropped = await build_swe_tasks(project, None, image=image, max_mutants=mutants)
        spent = time.perf_counter() - started
        starts = [await swe_env_seconds(t, image=image) for t in kept[:5]]
        return {
            "tried": len(kept) + sum(dropped.values()),
            "kept": len(kept),
            "dropped": dict(dropped),
            "yield": round(swe_yield(kept, dropped), 3),
            "s_per_mutant": round(spent / max(1, len(kept) + sum(dropped.values())), 2),
            "env_s": round(median(starts), 3) if starts else None,
        }

    def bare_start(image: str) -> float:
        """The floor under an episode's start: a container of the image that runs `true`."""
        started = time.perf_counter()
        engine().containers.run(image, "true", remove=True, network_disabled=True)
        return time.perf_counter() - started

    build_swe_image([ProjectSource("tinyproj", FIXTURE)], BENCH_IMAGE, base=ensure_image())
    try:
        fixture = asyncio.run(measure("tinyproj", BENCH_IMAGE, 12 if quick else 40))
        bare = median(bare_start(BENCH_IMAGE) for _ in range(5))
    finally:
        engine().images.remove(BENCH_IMAGE, force=True)
    figures: dict[str, Any] = {
        "swe_yield": fixture["yield"],
        "swe_env_s": fixture["env_s"],
        "bare_container_s": round(bare, 3),
        "swe_fixture": fixture,
    }
    if not quick and image_exists(SWE_IMAGE):
        for project in ("more-itertools", "idna"):
            figures[f"swe_{project}"] = asyncio.run(measure(project, SWE_IMAGE, 20))
    return figures


def decontamination(size: int) -> dict[str, float]:
    from synth.decontam import planted_precision_recall

    precision, recall = planted_precision_recall(seed=0, size=size)
    return {"decontam_precision": precision, "decontam_recall": recall, "decontam_planted": size}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer blueprints and mutants")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument(
        "--embedded", action="store_true", help="also let the embedded model write blueprints"
    )
    args = parser.parse_args()
    per_kind = 3 if args.quick else 12
    console = Console(stderr=args.json)
    started = time.perf_counter()

    scripted = blueprints_scripted(per_kind)
    drafts = scripted.pop("drafts")
    figures: dict[str, Any] = {
        "blueprint_tried": scripted["tried"],
        "blueprint_kept_fraction": round(scripted["kept_fraction"], 3),
        "blueprint_rejects": scripted["rejects"],
        "planted_faults": scripted["planted"],
        "planted_caught_right_reason": scripted["planted_caught_right_reason"],
        "planted_caught_other_reason": scripted["planted_caught_other_reason"],
        "planted_missed": scripted["planted_missed"],
        "sound_blueprints": scripted["sound"],
        "sound_kept": scripted["sound_kept"],
    }
    spread = diversity(drafts, template_drafts(per_kind))
    figures.update({k: round(v, 3) if isinstance(v, float) else v for k, v in spread.items()})
    if args.embedded and not args.quick:
        embedded = blueprints_embedded(2)
        figures["embedded_blueprint_tried"] = embedded["tried"]
        figures["embedded_blueprint_kept_fraction"] = round(embedded["kept_fraction"], 3)
        figures["embedded_blueprint_rejects"] = embedded["rejects"]
    figures.update(swe(quick=args.quick))
    figures.update(decontamination(100 if args.quick else 400))
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    figures["quick"] = args.quick

    table = Table(title="Verifiable task synthesis")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
