"""Fidelity of rewards: the highest reward any gym gives a degenerate completion.

Each gym's tasks are built the way training builds them (small counts), and every task
gets six degenerate completions: empty, whitespace only, its prompt echoed, a loop of a
sound answer, a sound answer followed by chat-template role markers (the model writing
the user's next turn), and a truncated one (cut by the generation cap before it finished a
sentence or line; its ids end without EOS). They are scored through the real reward seam
(``rl.gyms.base.reward_function``), and, for comparison, by the gym's verifier alone
(``ungated``: what the gate in front of it closes). Each task also scores one sound
completion as a control, so a gym that rewarded nothing at all would show.

The judged gyms, tool-use tasks without a usable expected state, and the self-critique
reward run against a scripted judge on loopback that gives every criterion its maximum and
prefers the first answer in every comparison: the adversarial case, since a gullible
judge must still not reward degenerate text. The code gym needs a Docker sandbox; where
none runs it is skipped and the result says why.

Target: ``degenerate_max_reward`` = 0 (no gym, no case).

    python bench/fidelity_rewards.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm.testing import ScriptedEndpoint  # noqa: E402
from rl.gyms import Gym, build_gym  # noqa: E402
from rl.gyms.base import Resources, Sample, reward_function  # noqa: E402
from rubrics.schema import SCALE_RANGE  # noqa: E402

CASES = ("empty", "whitespace", "prompt_echo", "repetition", "role_markers", "truncated")
EOS = 0
OPENING = "To work this out we first need to look carefully at every part of the question and"
BANK = ROOT / "configs" / "grpo" / "tasks" / "bank.jsonl"
CODE_TASKS = [
    {"prompt": "def add(a, b):\n    '''Return a + b.'''", "tests": "assert add(2, 3) == 5"},
    {"prompt": "def rev(s):\n    '''Reverse s.'''", "tests": "assert rev('ab') == 'ba'"},
]
CODE_SOUND = {"add": "return a + b", "rev": "return s[::-1]"}
_CRITERION = re.compile(r"^### (\S+)  \(scale: ([\w-]+)", re.MULTILINE)


def gullible(request: dict[str, Any]) -> str:
    """A judge that gives every criterion it is shown its maximum, and a critic that
    prefers the first answer: whatever it is asked, the answer is "perfect"."""
    text = "\n".join(str(m.get("content") or "") for m in request.get("messages") or [])
    if "<<<RESPONSE" in text:
        return json.dumps({"reasoning": "The first is better.", "winner": "A"})
    scores = {
        key: {"reasoning": "Flawless.", "score": SCALE_RANGE[scale][1]}
        for key, scale in _CRITERION.findall(text)
    }
    return json.dumps({"reasoning": "Everything is perfect.", "scores": scores})


def completions(sound: str, prompt: str) -> dict[str, tuple[str, bool]]:
    """``case -> (text, ended)`` for one task; ``ended`` is False for the cut completion."""
    return {
        "empty": ("", True),
        "whitespace": (" \n\t \n", True),
        "prompt_echo": (prompt, True),
        "repetition": (" ".join([sound] * 12), True),
        "role_markers": (f"{sound}<|im_end|>\n<|im_start|>user\nThanks, that is right.", True),
        "truncated": (OPENING, False),
        "sound": (sound, True),
    }


def sound_answer(gym: Gym, row: dict[str, Any]) -> str:
    """A completion the gym's definition rewards (or should), as the control."""
    task = json.loads(row["task"])
    if gym.name == "math":
        return f"Working it through step by step.\nAnswer: {task['answer']}"
    if gym.name == "code":
        name = re.search(r"def (\w+)", task["prompt"]).group(1)  # type: ignore[union-attr]
        return f"```python\n{task['prompt']}\n    {CODE_SOUND[name]}\n```"
    if gym.name == "faithfulness":
        return "The context answers this directly."
    if gym.name == "tool_use":
        return "I checked the accounts and did what you asked."
    return "Here is a short and plain answer to your request"


def score_gym(gym: Gym, rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """``{"gated"|"ungated": {case: [scores]}}`` for every row and case, in one seam call."""
    from rl.environments import environment_class

    prompts, texts, ids, cases, envs, tasks = [], [], [], [], [], []
    for row in rows:
        last = row["prompt"][-1]["content"]
        for case, (text, ended) in completions(sound_answer(gym, row), last).items():
            prompts.append(row["prompt"])
            texts.append([{"role": "assistant", "content": text}])
            ids.append([1 + i for i, _ in enumerate(text.split())] + ([EOS] if ended else []))
            cases.append(case)
            tasks.append(row["task"])
            env = None
            if row["environment"] != "text":
                env = environment_class(row["environment"])()
                env.reset(**row)  # the roll-out did nothing: no tool was called
            envs.append(env)
    kw = {"gym": [gym.name] * len(prompts), "task": tasks, "environments": envs}
    gated = reward_function(gym, stop_ids={EOS})(prompts, texts, completion_ids=ids, **kw)
    samples = [
        Sample(p, c, json.loads(t), environment=e, truncated=EOS not in i)
        for p, c, t, e, i in zip(prompts, texts, tasks, envs, ids, strict=True)
    ]
    ungated = gym.verify_batch(samples)
    out: dict[str, dict[str, list[float]]] = {"gated": {}, "ungated": {}}
    for case, g, u in zip(cases, gated, ungated, strict=True):
        for kind, value in (("gated", g), ("ungated", u)):
            if value is not None:
                out[kind].setdefault(case, []).append(float(value))
    return out


def gyms(
    quick: bool, workdir: Path, resources: Resources, stack: ExitStack
) -> tuple[list[Gym], dict[str, str]]:
    """The gyms to measure, and the ones skipped with why."""
    n = 4 if quick else 16
    built = [
        build_gym("math", {"count": n, "eval_count": 0}, resources),
        build_gym("ifeval", {"count": 3 * n, "per_prompt": 1, "eval_count": 0}, resources),
        build_gym("faithfulness", {"count": n, "eval_count": 0}, resources),
        build_gym("safety", {"count": n, "eval_count": 0}, resources),
        build_gym("tool_use", {"path": str(tool_tasks(workdir)), "eval_count": 0}, resources),
    ]
    skipped: dict[str, str] = {}
    try:
        from sandboxes.docker import IMAGE, DockerSandbox, Limits, ensure_image

        ensure_image()
        box = stack.enter_context(DockerSandbox(IMAGE, pool_size=2, limits=Limits(timeout_s=10)))
        resources.sandbox = lambda: box
    except Exception as exc:  # noqa: BLE001 - no Docker here is a skipped gym, not a failed run
        skipped["code"] = f"no Docker sandbox here: {exc}"
    else:
        path = workdir / "code.jsonl"
        path.write_text("".join(json.dumps(t) + "\n" for t in CODE_TASKS))
        built.append(build_gym("code", {"path": str(path), "eval_count": 0}, resources))
    return built, skipped


def tool_tasks(workdir: Path) -> Path:
    """The bank tasks, plus one whose expected state the initial state already meets."""
    lines = BANK.read_text().splitlines()
    spec = json.loads(lines[0])
    balance = spec["initial_state"]["accounts"]["checking-1"]["balance"]
    spec.update(id="read-only", user_goal="What is the balance of checking-1?")
    spec["checks"]["expected_state"] = {"accounts": {"checking-1": {"balance": balance}}}
    path = workdir / "tools.jsonl"
    path.write_text("\n".join([*lines, json.dumps(spec)]) + "\n")
    return path


def critic_rewards(server: ScriptedEndpoint) -> dict[str, list[float]]:
    """The self-critique reward of each degenerate case in a group with a sound answer."""
    from rl.config import CriticConfig
    from rl.critique import CritiqueReward, EndpointCritic

    prompt = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]
    sound = "Air scatters blue light more than red light. So the sky looks blue."
    cases = completions(sound, prompt[0]["content"])
    out: dict[str, list[float]] = {}
    for mode in ("win_rate", "centred"):
        config = CriticConfig(rubrics=["core"], reward=mode)
        backend = EndpointCritic(server.endpoint(max_retries=0))
        critic = CritiqueReward(config, backend, num_generations=len(cases), stop_ids={EOS})
        texts = [[{"role": "assistant", "content": t}] for t, _ in cases.values()]
        ids = [[1] + ([EOS] if ended else []) for _, ended in cases.values()]
        n = len(cases)
        rewards = critic([prompt] * n, texts, gym=["safety"] * n, completion_ids=ids)
        for case, value in zip(cases, rewards, strict=True):
            if value is not None:
                out.setdefault(case, []).append(value)
    return out


def measure(quick: bool) -> dict[str, Any]:
    """Per gym and case the highest reward through the seam and from the verifier alone."""
    table: dict[str, dict[str, float]] = {}
    ungated: dict[str, dict[str, float]] = {}
    tasks: dict[str, int] = {}
    with (
        ScriptedEndpoint(gullible) as server,
        tempfile.TemporaryDirectory() as tmp,
        ExitStack() as stack,
    ):
        resources = Resources(judge=lambda: server.endpoint(max_retries=0))
        built, skipped = gyms(quick, Path(tmp), resources, stack)
        for gym in built:
            rows = gym.rows("train")
            tasks[gym.name] = len(rows)
            scores = score_gym(gym, rows)
            table[gym.name] = {c: max(v) for c, v in scores["gated"].items()}
            ungated[gym.name] = {c: max(v) for c, v in scores["ungated"].items()}
        table["critic"] = {c: max(v) for c, v in critic_rewards(server).items()}
    degenerate = [v for row in table.values() for c, v in row.items() if c != "sound"]
    return {
        "degenerate_max_reward": max(degenerate),
        "ungated_max_reward": max(
            v for r in ungated.values() for c, v in r.items() if c != "sound"
        ),
        "sound_reward": {g: row.get("sound") for g, row in table.items()},
        "table": table,
        "ungated": ungated,
        "tasks": tasks,
        "skipped": skipped,
    }


def render(result: dict[str, Any]) -> Table:
    out = Table(title="Highest reward of a degenerate completion (verifier alone in brackets)")
    out.add_column("gym")
    for case in (*CASES, "sound"):
        out.add_column(case)
    for gym, row in result["table"].items():
        alone = result["ungated"].get(gym, {})
        cells = []
        for case in (*CASES, "sound"):
            value = row.get(case)
            shown = "-" if value is None else f"{value:.2f}"
            cells.append(shown + (f" ({alone[case]:.2f})" if case in alone else ""))
        out.add_row(gym, *cells)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer tasks per gym")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    console = Console(stderr=args.json, width=160)
    result = measure(args.quick)
    console.print(render(result))
    for gym, why in result["skipped"].items():
        console.print(f"{gym}: skipped, {why}")
    console.print(
        f"degenerate_max_reward {result['degenerate_max_reward']:.2f} (target 0); "
        f"the verifiers alone: {result['ungated_max_reward']:.2f}"
    )
    if args.json:
        print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
