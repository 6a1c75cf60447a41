"""The self-critique reward against the scripted critic on loopback (a real HTTP server):
grouping, budget and cache, failures, pre-checks, agreement and in-context refinement."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llm.testing import ScriptedEndpoint
from rl.config import CriticConfig, RefinementConfig
from rl.critique import (
    AgreementLog,
    CritiqueReward,
    EndpointCritic,
    ExemplarBank,
    VerifiedPair,
    group_agreement,
)
from rl.critique.groups import groups
from rl.critique.reward import pearson

BLOCK = re.compile(r"<<<RESPONSE ([AB]) \w+>>>\n(.*?)\n<<<END RESPONSE", re.DOTALL)


def shown(request: dict[str, Any]) -> dict[str, str]:
    return dict(BLOCK.findall(request["messages"][0]["content"]))


def answer(winner: str) -> str:
    return json.dumps({"reasoning": "compared", "winner": winner})


def longer_wins(request: dict[str, Any]) -> str:
    pair = shown(request)
    a, b = len(pair["A"]), len(pair["B"])
    return answer("A" if a > b else "B" if b > a else "tie")


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def reply(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def batch(prompt_texts: list[str], answers: list[str]) -> tuple[list[Any], list[Any]]:
    return [user(p) for p in prompt_texts], [reply(a) for a in answers]


def make(server: ScriptedEndpoint, g: int = 4, **fields: Any) -> CritiqueReward:
    config = CriticConfig(rubrics=["core"], **fields)
    backend = EndpointCritic(server.endpoint(max_retries=0), exemplars=config.refinement.exemplars)
    return CritiqueReward(config, backend, num_generations=g)


# ------------------------------------------------------------------ grouping (pure)
@pytest.mark.parametrize(
    ("prompts", "g", "expected"),
    [
        (["p"] * 4 + ["q"] * 4, 4, [[0, 1, 2, 3], [4, 5, 6, 7]]),
        (["p"] * 4, 2, [[0, 1], [2, 3]]),  # the same prompt drawn twice: two groups
        (["p", "p", "q", "q", "q"], 3, [[0, 1], [2, 3, 4]]),  # a group cut by the process split
        (["p"] * 6, 3, [[0, 1, 2], [3, 4, 5]]),
    ],
)
def test_groups_are_runs_of_one_prompt_at_most_num_generations_long(
    prompts: list[str], g: int, expected: list[list[int]]
) -> None:
    assert [x.indices for x in groups([user(p) for p in prompts], g)] == expected


# ------------------------------------------------------------------ reward
def test_each_group_is_ranked_alone_and_longer_answers_win() -> None:
    prompts, completions = batch(["p"] * 3 + ["q"] * 3, ["a", "bbb", "cc", "x", "yy", "zzz"])
    with ScriptedEndpoint(longer_wins) as server:
        reward = make(server, g=3)
        rewards = reward(prompts, completions)
    assert rewards == [0.0, 1.0, 0.5, 0.0, 0.5, 1.0]
    assert len(server.requests) == 12  # 3 pairs x 2 orders x 2 groups
    # no request mixes the completions of two prompts
    assert all(
        set(shown(r).values()) <= {"a", "bbb", "cc"} or set(shown(r).values()) <= {"x", "yy", "zzz"}
        for r in server.requests
    )
    assert reward.metrics["critic/calls"] == 12
    assert reward.metrics["critic/length_correlation"] == pytest.approx(1.0)


@pytest.mark.parametrize(("per_call", "calls"), [(8, 4), (4, 2), (2, 1)])
def test_accumulation_slices_give_the_same_rewards_as_one_call(per_call: int, calls: int) -> None:
    prompts, completions = batch(["p"] * 4 + ["q"] * 4, ["a", "bb", "ccc", "dddd"] * 2)
    with ScriptedEndpoint(longer_wins) as server:
        whole = make(server, g=4)(prompts, completions)
        reward = make(server, g=4)
        sliced: list[float | None] = []
        for start in range(0, 8, per_call):
            sliced += reward(
                prompts[start : start + per_call], completions[start : start + per_call]
            )
    if per_call >= 4:
        assert sliced == whole
    else:  # a slice holds part of a group: it is ranked on what it holds
        assert sliced[1] == 1.0 and sliced[0] == 0.0


def test_the_call_budget_caps_requests_and_unresolved_groups_get_none() -> None:
    prompts, completions = batch(["p"] * 4 + ["q"] * 4, ["a", "bb", "ccc", "dddd"] * 2)
    with ScriptedEndpoint(longer_wins) as server:
        reward = make(server, g=4, calls_per_step=5, max_concurrency=1)
        rewards = reward(prompts, completions)
    assert len(server.requests) == 5
    assert reward.metrics["critic/calls"] == 5
    assert rewards[:4] != [None] * 4  # the first group was compared
    assert rewards[4:] == [None] * 4  # the second got no call: no reward, not a made-up one


def test_cached_verdicts_cost_no_calls() -> None:
    prompts, completions = batch(["p"] * 3, ["a", "bb", "ccc"])
    with ScriptedEndpoint(longer_wins) as server:
        reward = make(server, g=3)
        first = reward(prompts, completions)
        second = reward(prompts, completions)
    assert first == second and len(server.requests) == 6
    assert reward.metrics["critic/cache_hits"] == 6 and reward.metrics["critic/calls"] == 0


def test_a_failing_critic_gives_none_for_its_group_only() -> None:
    def flaky(request: dict[str, Any]) -> str:
        return "not json" if "broken" in request["messages"][0]["content"] else longer_wins(request)

    prompts, completions = batch(["broken"] * 3 + ["fine"] * 3, ["a", "bb", "ccc"] * 2)
    with ScriptedEndpoint(flaky) as server:
        reward = make(server, g=3)
        rewards = reward(prompts, completions)
    assert rewards[:3] == [None, None, None]
    assert rewards[3:] == [0.0, 0.5, 1.0]
    assert reward.metrics["critic/failed_groups"] == 1


def test_an_unreachable_critic_never_raises() -> None:
    with ScriptedEndpoint(longer_wins) as server:
        endpoint = server.endpoint(max_retries=0, timeout_s=2)
    config = CriticConfig(rubrics=["core"])
    reward = CritiqueReward(config, EndpointCritic(endpoint), num_generations=2)
    assert reward(*batch(["p", "p"], ["a", "bb"])) == [None, None]


def test_prechecks_penalize_without_asking_the_critic() -> None:
    answers = ["Great question! It is 4.", "It is 4.", "4"]
    with ScriptedEndpoint(longer_wins) as server:
        reward = CritiqueReward(
            CriticConfig(precheck_reward=-1.0),  # core + prescriptive
            EndpointCritic(server.endpoint(max_retries=0)),
            num_generations=3,
        )
        rewards = reward(*batch(["2+2?"] * 3, answers))
    assert rewards == [-1.0, 1.0, 0.0]
    assert len(server.requests) == 2  # only the two unflagged answers, in both orders
    assert all("Great question" not in "".join(shown(r).values()) for r in server.requests)
    assert reward.metrics["critic/precheck/initial_praise"] == pytest.approx(1 / 3)


def test_rows_of_other_gyms_get_none_and_row_rubrics_are_judged() -> None:
    prompts, completions = batch(["p"] * 2 + ["q"] * 2, ["a", "bb", "c", "dd"])
    with ScriptedEndpoint(longer_wins) as server:
        reward = make(server, g=2, gyms=["chat"])
        rewards = reward(
            prompts, completions, gym=["chat", "chat", "math", "math"], rubrics=[["safety"]] * 4
        )
    assert rewards == [0.0, 1.0, None, None]
    assert all("safety." in r["messages"][0]["content"] for r in server.requests)


def test_a_rows_own_rubric_from_the_users_files_reaches_the_critic(tmp_path: Path) -> None:
    (tmp_path / "refund.yaml").write_text(
        "id: refund\nkind: task\ndescription: Refunds follow policy.\ncriteria:\n"
        "  - id: window\n    description: Quotes the 30-day refund window.\n"
        "    scale: binary\n"
    )
    prompts, completions = batch(["p"] * 2, ["a", "bb"])
    with ScriptedEndpoint(longer_wins) as server:
        files = [str(tmp_path / "refund.yaml")]
        config = CriticConfig(rubrics=["core"], rubric_files=files)
        backend = EndpointCritic(server.endpoint(max_retries=0))
        reward = CritiqueReward(config, backend, num_generations=2)
        rewards = reward(prompts, completions, rubrics=[["refund"]] * 2)
    assert rewards == [0.0, 1.0]
    assert all(
        "Quotes the 30-day refund window" in r["messages"][0]["content"] for r in server.requests
    )


def test_centred_rewards_sum_to_zero_per_group() -> None:
    with ScriptedEndpoint(longer_wins) as server:
        rewards = make(server, g=4, reward="centred")(*batch(["p"] * 4, ["a", "bb", "ccc", "dd"]))
    assert sum(r or 0.0 for r in rewards) == pytest.approx(0.0)


def test_metrics_reach_trls_log_metric() -> None:
    logged: dict[str, float] = {}
    with ScriptedEndpoint(longer_wins) as server:
        make(server, g=2)(*batch(["p"] * 2, ["a", "bb"]), log_metric=logged.__setitem__)
    assert logged["critic/calls"] == 2 and "critic/reward_mean" in logged


# ------------------------------------------------------------------ agreement arithmetic
def test_agreement_counts_only_verifier_distinguished_pairs() -> None:
    # verifier: 1, 1, 0, None -> distinguished pairs (0,2), (1,2); critic orders 0 > 2 > 1
    result = group_agreement("q", ["a", "b", "c", "d"], [2.0, 0.0, 1.0, 5.0], [1.0, 1.0, 0.0, None])
    assert result.pairs == 2 and result.agreed == 1.0
    assert result.disagreements == [VerifiedPair("q", "b", "c")]


def test_a_critic_tie_counts_half() -> None:
    assert group_agreement("q", ["a", "b"], [0.0, 0.0], [1.0, 0.0]).agreed == 0.5


def test_agreement_is_kept_per_domain() -> None:
    log = AgreementLog()
    log.add("math", group_agreement("q", ["a", "b"], [1.0, 0.0], [1.0, 0.0]))
    log.add("code", group_agreement("q", ["a", "b"], [0.0, 1.0], [1.0, 0.0]))
    log.add("code", group_agreement("q", ["a", "b", "c"], [2.0, 1.0, 0.0], [1.0, 0.5, 0.0]))
    assert log.take() == {"math": 1.0, "code": 0.75, "all": 0.8}
    assert log.take() == {}


def test_pearson_is_none_for_constant_input() -> None:
    assert pearson([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]) is None
    assert pearson([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


# ------------------------------------------------------------------ in-context refinement
CORRECT = {"2+3?": "It is 5", "4+4?": "It is 8", "1+6?": "It is 7", "3+3?": "It is 6"}


def shorter_wins_unless_shown_exemplars(request: dict[str, Any]) -> str:
    """A critic that prefers short answers (here: the wrong ones), but follows verified
    exemplars when shown some: then it picks the task's correct answer."""
    text = request["messages"][0]["content"]
    pair = shown(request)
    task = re.search(r"## Task\n(.*)\n", text)
    if "Verified winner" in text and task:
        right = CORRECT[task.group(1).strip()]
        return answer("A" if pair["A"] == right else "B")
    return answer("A" if len(pair["A"]) < len(pair["B"]) else "B")


def test_in_context_refinement_shows_verified_exemplars_and_raises_agreement() -> None:
    config = CriticConfig(
        rubrics=["core"],
        refinement=RefinementConfig(method="in_context", every=1, held_out=2, exemplars=2),
    )
    with ScriptedEndpoint(shorter_wins_unless_shown_exemplars) as server:
        backend = EndpointCritic(server.endpoint(max_retries=0), exemplars=2)
        reward = CritiqueReward(config, backend, num_generations=2)
        for step, (task, right) in enumerate(CORRECT.items(), 1):
            prompts, completions = batch([task] * 2, [right, "9"][:: 1 if step % 2 else -1])
            answers = [c[0]["content"] for c in completions]
            reward(
                prompts,
                completions,
                verified=[1.0 if a == right else 0.0 for a in answers],
                gym=["math"] * 2,
                trainer_state=SimpleNamespace(global_step=step),
            )
        assert reward.refinements, "no refinement ran"
        first = reward.refinements[0]
        # the first two verified pairs are held out; the third, judged wrong, refines
        assert first["step"] == 3 and first["pairs"] == 1
        assert first["before"] == 0.0 and first["after"] == 1.0
        assert reward.metrics["critic/agreement/math"] == 1.0  # step 4: after refinement
        assert len(backend.bank) >= 1 and backend.version >= 1
    with_exemplars = [
        r for r in server.requests if "Verified winner" in r["messages"][0]["content"]
    ]
    assert with_exemplars, "no request carried the exemplars"
    bank_pair = backend.bank.select("math", 1)[0]
    assert bank_pair.better in with_exemplars[-1]["messages"][0]["content"]


def test_the_exemplar_bank_prefers_the_domain_and_balances_positions() -> None:
    bank = ExemplarBank(per_domain=2)
    bank.add([VerifiedPair(f"m{i}", "good", "bad", "math") for i in range(3)])
    bank.add([VerifiedPair("c", "good", "bad", "code")])
    assert [p.prompt for p in bank.select("math", 3)] == ["m2", "m1", "c"]
    winners = re.findall(r"Verified winner: (\w)", bank.render("code", 3))
    assert len(winners) == 3
