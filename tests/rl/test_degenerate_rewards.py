"""No gym earns reward with degenerate text: empty, whitespace only, the prompt echoed, a
loop, role markers, or a completion cut before it finished a sentence. Everything is
scored through the real reward seam; the judged gyms, the tool-use judge and the critic
answer from a gullible scripted judge on loopback (every criterion at its maximum), so
only the gate can keep the reward at 0."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from llm.testing import ScriptedEndpoint
from rl.gyms import Budget, Gym, Sample, build_gym
from rl.gyms.base import Resources, reward_function
from rl.gyms.math import score_answer

ROOT = Path(__file__).resolve().parents[2]
EOS = 0
LOOP = 12


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fidelity_rewards", ROOT / "bench" / "fidelity_rewards.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
CASES = ["empty", "whitespace", "prompt_echo", "repetition", "role_markers", "truncated"]


def case_text(case: str, sound: str, prompt: str) -> tuple[str, bool]:
    """The degenerate completion of ``case`` and whether it ended (False: cut by the cap)."""
    return BENCH.completions(sound, prompt)[case]  # type: ignore[no-any-return]


def seam(
    gym: Gym,
    row: dict[str, Any],
    texts: list[tuple[str, bool]],
    environments: list[Any] | None = None,
    logged: dict[str, float] | None = None,
) -> list[float | None]:
    """Score ``texts`` for ``row`` through TRL's reward seam, as training does."""
    n = len(texts)
    ids = [[1] * len(t.split()) + ([EOS] if ended else []) for t, ended in texts]
    return reward_function(gym, stop_ids={EOS})(
        [row["prompt"]] * n,
        [[{"role": "assistant", "content": t}] for t, _ in texts],
        completion_ids=ids,
        gym=[gym.name] * n,
        task=[row["task"]] * n,
        environments=environments or [None] * n,
        log_metric=None if logged is None else logged.__setitem__,
    )


@pytest.fixture(scope="module")
def judge() -> Any:
    with ScriptedEndpoint(BENCH.gullible) as server:
        yield server


def judged_gym(server: ScriptedEndpoint, name: str, **options: Any) -> Gym:
    return build_gym(name, options, Resources(judge=lambda: server.endpoint(max_retries=0)))


# ------------------------------------------------------------------ math
@pytest.mark.parametrize("case", CASES)
def test_math_gives_degenerate_completions_nothing(case: str) -> None:
    gym = build_gym("math", {"count": 1, "eval_count": 0})
    row = gym.rows("train")[0]
    answer = json.loads(row["task"])["answer"]
    sound = f"Answer: {answer}"
    rewards = seam(gym, row, [case_text(case, sound, row["prompt"][-1]["content"]), (sound, True)])
    assert rewards == [0.0, 1.0]


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("Answer: \\boxed{}", ""),  # an empty box
        ("Answer: x = 3 or x = -4", ""),  # candidates, each after its own "="
        ("Answer: 3 or -4 or 5", ""),
        ("5 - 3 - 6", "Calculate 5 - 3 - 6."),  # the question's expression echoed
        ("Answer: 5 - 3 - 6", "Calculate 5 - 3 - 6."),
    ],
)
def test_math_verifier_holes_score_zero(text: str, question: str) -> None:
    assert score_answer(text, "-4", question=question) == 0.0


def test_math_still_accepts_working_and_lists_the_gold_answer_has() -> None:
    assert score_answer("5 - 3 = 2, 2 - 6 = -4", "-4", question="Calculate 5 - 3 - 6.") == 1.0
    assert score_answer("Answer: 2, 3", "2, 3") == 1.0
    assert score_answer("The roots are 2 and 3.\nAnswer: 4", "4", question="2 + 2") == 1.0


def test_a_math_completion_cut_by_the_generation_cap_has_no_last_line_answer() -> None:
    gym = build_gym("math", {"count": 1, "eval_count": 0})
    row = {
        "prompt": [{"role": "user", "content": "Calculate 5 - 3 - 6."}],
        "task": '{"answer": "-4"}',
    }
    working = "First 5 - 3 = 2.\n2 - 6 = -4"
    assert seam(gym, row, [(working, True), (working, False)]) == [1.0, 0.0]


def test_over_budget_and_cut_before_finishing_anything_is_degenerate_and_penalised() -> None:
    gym = build_gym("math", {"count": 1, "eval_count": 0})
    reward = reward_function(
        gym, budget=Budget(max_tokens=3, penalty=0.5), decode=lambda ids: "Let me think"
    )
    logged: dict[str, float] = {}
    [value] = reward(
        prompts=[[{"role": "user", "content": "Calculate 5 - 3 - 6."}]],
        completions=[[{"role": "assistant", "content": "Let me think about it. Answer: -4"}]],
        completion_ids=[[1, 2, 3, 4, 5, 6, 7]],
        gym=["math"],
        task=['{"answer": "-4"}'],
        log_metric=logged.__setitem__,
    )
    assert value == -0.5
    assert logged["gym/math/degenerate"] == 1.0


# ------------------------------------------------------------------ instruction following
def test_ifeval_verifier_alone_rewards_an_empty_answer_and_the_seam_does_not() -> None:
    gym = build_gym(
        "ifeval",
        {
            "count": 4,
            "eval_count": 0,
            "per_prompt": 2,
            "families": ["no_commas", "keywords_exclude"],
        },
    )
    row = gym.rows("train")[0]
    alone = gym.verify(
        Sample(row["prompt"], [{"role": "assistant", "content": ""}], json.loads(row["task"]))
    )
    assert alone == 1.0  # every constraint is an exclusion: nothing meets them all
    logged: dict[str, float] = {}
    assert seam(gym, row, [("", True), ("Sleep early and rest well.", True)], logged=logged) == [
        0.0,
        1.0,
    ]
    assert logged["gym/ifeval/degenerate"] == 0.5


@pytest.mark.parametrize("case", CASES)
def test_ifeval_gives_degenerate_completions_nothing(case: str) -> None:
    gym = build_gym(
        "ifeval",
        {"count": 1, "eval_count": 0, "per_prompt": 1, "families": ["no_commas"]},
    )
    row = gym.rows("train")[0]
    sound = "Sleep early and keep the room dark."
    rewards = seam(gym, row, [case_text(case, sound, row["prompt"][-1]["content"]), (sound, True)])
    assert rewards == [0.0, 1.0]


# ------------------------------------------------------------------ code
@pytest.mark.parametrize("case", CASES)
def test_code_gives_degenerate_completions_nothing_without_running_them(case: str) -> None:
    def no_sandbox() -> Any:
        pytest.fail("a degenerate completion reached the sandbox")

    gym = build_gym("code", {"path": "unused.jsonl"}, Resources(sandbox=no_sandbox))
    payload = {"prompt": "def add(a, b):", "tests": ["assert add(1, 2) == 3"], "entry_point": "add"}
    row = {"prompt": [{"role": "user", "content": "Write add(a, b) returning the sum of a and b."}]}
    sound = "```python\ndef add(a, b):\n    return a + b\n```"
    text = case_text(case, sound, row["prompt"][-1]["content"])
    assert seam(gym, {**row, "task": json.dumps(payload)}, [text]) == [0.0]


def test_code_repeating_itself_inside_a_fence_is_not_a_loop() -> None:
    gym = build_gym("code", {"path": "unused.jsonl"})
    grid = "```python\ndef grid():\n    return [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]\n```"
    sample = Sample([], [{"role": "assistant", "content": grid}], {})
    assert gym.degeneracy(sample) is None
    looping = f"{grid}\n" + "I hope this helps. " * LOOP
    assert (
        gym.degeneracy(Sample([], [{"role": "assistant", "content": looping}], {})) == "repetition"
    )


@pytest.mark.integration
def test_code_that_defines_nothing_or_is_cut_scores_zero(docker_sandbox: Any) -> None:
    gym = build_gym("code", {"path": "unused.jsonl"}, Resources(sandbox=lambda: docker_sandbox))
    payload = {"prompt": "def add(a, b):", "tests": ["assert add(1, 2) == 3"], "entry_point": "add"}

    def sample(text: str, truncated: bool = False) -> Sample:
        return Sample([], [{"role": "assistant", "content": text}], payload, truncated=truncated)

    nothing = sample("```python\nimport math\n```")
    cut = sample("```python\ndef add(a, b):\n    return a +", truncated=True)
    sound = sample("```python\ndef add(a, b):\n    return a + b\n```")
    assert gym.verify_batch([nothing, cut, sound]) == [0.0, 0.0, 1.0]


@pytest.mark.integration
def test_code_tests_that_pass_with_no_solution_cannot_say(docker_sandbox: Any) -> None:
    gym = build_gym("code", {"path": "unused.jsonl"}, Resources(sandbox=lambda: docker_sandbox))
    vacuous = {"prompt": "", "tests": ["def check(candidate):\n    assert candidate(1) == 2"]}
    anything = Sample([], [{"role": "assistant", "content": "```python\nx = 1\n```"}], vacuous)
    assert gym.verify_batch([anything]) == [None]  # no entry_point: check() is never called


# ------------------------------------------------------------------ judged gyms
@pytest.mark.parametrize("name", ["faithfulness", "safety"])
@pytest.mark.parametrize("case", CASES)
def test_judged_gyms_give_degenerate_completions_nothing_whatever_the_judge_says(
    judge: ScriptedEndpoint, name: str, case: str
) -> None:
    gym = judged_gym(judge, name)
    row = gym.rows("train")[0]
    sound = "The context answers this directly."
    before = len(judge.requests)
    [degenerate] = seam(gym, row, [case_text(case, sound, row["prompt"][-1]["content"])])
    assert degenerate == 0.0
    assert len(judge.requests) == before  # the judge was never asked
    assert seam(gym, row, [(sound, True)]) == [1.0]  # the same judge rewards an answer


def test_faithfulness_counts_a_cut_off_last_sentence_as_unsupported(
    judge: ScriptedEndpoint,
) -> None:
    gym = judged_gym(judge, "faithfulness")
    row = gym.rows("train")[0]
    cut = "It opened in 1932. It is 1,149"
    assert seam(gym, row, [(cut, True), (cut, False)]) == [1.0, 0.5]


# ------------------------------------------------------------------ tool use
TOOL_OPTIONS = {"eval_count": 0}


def tool_gym(server: ScriptedEndpoint, tmp_path: Path) -> Gym:
    path = BENCH.tool_tasks(tmp_path)
    return judged_gym(server, "tool_use", path=str(path), **TOOL_OPTIONS)


def played(rows: list[dict[str, Any]], task_id: str) -> tuple[dict[str, Any], Any]:
    from rl.environments import environment_class

    row = next(r for r in rows if json.loads(r["task"])["task"]["id"] == task_id)
    env = environment_class(row["environment"])()
    env.reset(**row)
    return row, env


@pytest.mark.parametrize("case", CASES)
def test_a_tool_roll_out_that_did_nothing_and_said_nothing_earns_nothing(
    judge: ScriptedEndpoint, tmp_path: Path, case: str
) -> None:
    gym = tool_gym(judge, tmp_path)
    rows = gym.rows("train")
    for task_id in ("t-0", "read-only"):  # a transfer; a task the initial state already meets
        row, env = played(rows, task_id)
        text = case_text(case, "Done.", row["prompt"][-1]["content"])
        assert seam(gym, row, [text], environments=[env]) == [0.0]


def test_an_expected_state_doing_nothing_meets_is_judged_not_passed(
    judge: ScriptedEndpoint, tmp_path: Path
) -> None:
    gym = tool_gym(judge, tmp_path)
    row, env = played(gym.rows("train"), "read-only")
    before = len(judge.requests)
    assert seam(gym, row, [("Your balance is 500.00.", True)], environments=[env]) == [1.0]
    assert len(judge.requests) == before + 1  # the gullible judge decided, not the state


def test_doing_the_task_and_ending_with_a_degenerate_answer_earns_nothing(
    judge: ScriptedEndpoint, tmp_path: Path
) -> None:
    gym = tool_gym(judge, tmp_path)
    row, env = played(gym.rows("train"), "t-0")

    async def act() -> None:
        await env.transfer(source="checking-1", destination="savings-2", amount=50.0)
        await env.finish()

    asyncio.run(act())
    said = [("I moved 50.00 to savings.", True), ("", True), ("<|im_start|>user\nthanks", True)]
    assert seam(gym, row, said, environments=[env] * 3) == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------ self-critique reward
@pytest.mark.parametrize("mode", ["win_rate", "centred"])
def test_the_critic_never_rewards_a_degenerate_completion(
    judge: ScriptedEndpoint, mode: str
) -> None:
    from rl.config import CriticConfig
    from rl.critique import CritiqueReward, EndpointCritic

    prompt = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]
    sound = "Air scatters blue light more than red light. So the sky looks blue."
    texts = [case_text(c, sound, prompt[0]["content"]) for c in CASES] + [
        (sound, True),
        (sound + " Yes.", True),
    ]
    critic = CritiqueReward(
        CriticConfig(rubrics=["core"], reward=mode),
        EndpointCritic(judge.endpoint(max_retries=0)),
        num_generations=len(texts),
        stop_ids={EOS},
    )
    rewards = critic(
        [prompt] * len(texts),
        [[{"role": "assistant", "content": t}] for t, _ in texts],
        gym=["safety"] * len(texts),
        completion_ids=[[1] + ([EOS] if ended else []) for _, ended in texts],
    )
    assert all(r is not None and r <= 0.0 for r in rewards[: len(CASES)])
    assert max(r for r in rewards[len(CASES) :] if r is not None) > 0.0
    assert critic.metrics["critic/degenerate"] == len(CASES) / len(texts)


# ------------------------------------------------------------------ the benchmark
def test_the_benchmark_finds_no_reward_for_degenerate_text_and_some_for_sound_answers() -> None:
    result = BENCH.measure(quick=True)
    assert result["degenerate_max_reward"] == 0.0
    assert result["ungated_max_reward"] > 0.0  # the gate, not the verifiers, holds the line
    assert all(v is not None and v > 0 for v in result["sound_reward"].values())
