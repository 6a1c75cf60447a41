"""The local trainable critic on the embedded SmolLM2: log-odds judging and a DPO round."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rl.config import RefinementConfig
from rl.critique import VerifiedPair
from rl.critique.local import LocalCritic
from rubrics import rank

pytestmark = pytest.mark.integration
PAIRS = [
    VerifiedPair("What is 3+4?", "3+4 = 7", "3+4 = 8", "math"),
    VerifiedPair("What is 2+5?", "2+5 = 7", "2+5 = 6", "math"),
]


@pytest.fixture(scope="module")
def critic() -> Iterator[LocalCritic]:
    refinement = RefinementConfig(method="dpo", steps=1, learning_rate=1e-4)
    yield LocalCritic.load("embedded", refinement, rubrics=[])


async def test_the_local_critic_ranks_a_group_by_log_odds(critic: LocalCritic) -> None:
    async with critic.connect() as comparator_for:
        ranking = await rank("What is 3+4?", ["7", "8", "9"], comparator_for("math", []))
    assert ranking.calls == 6 and ranking.failures == 0
    assert all(c.rationale.startswith("log p(A) - log p(B)") for c in ranking.comparisons)


@pytest.mark.slow
def test_one_dpo_round_changes_the_weights_and_the_judgments(critic: LocalCritic) -> None:
    before = {k: v.detach().clone() for k, v in critic.model.named_parameters()}
    margins = [critic.margin(p.prompt, p.better, p.worse, []) for p in PAIRS]
    critic.refine(PAIRS[:1])
    changed = sum(
        float((before[k] - v.detach()).abs().sum()) for k, v in critic.model.named_parameters()
    )
    assert changed > 0 and critic.version == 1
    after = [critic.margin(p.prompt, p.better, p.worse, []) for p in PAIRS]
    assert after != margins  # the refined weights are the ones judging now
