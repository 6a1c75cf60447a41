"""The local trainable critic on the embedded SmolLM2: log-odds judging and a DPO round."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm import ChatClient, Message
from llm.endpoints import EMBEDDED_URL_ENV
from rl.config import RefinementConfig, load_config
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


def test_the_verdict_is_the_symmetric_margin(critic: LocalCritic) -> None:
    p = PAIRS[0]
    there, back = (
        critic.margin(p.prompt, p.better, p.worse, []),
        critic.margin(p.prompt, p.worse, p.better, []),
    )
    assert critic.judge(p.prompt, p.better, p.worse, []) == pytest.approx((there - back) / 2)
    assert critic.judge(p.prompt, p.worse, p.better, []) == pytest.approx((back - there) / 2)
    critic.debias = False
    try:
        assert critic.judge(p.prompt, p.better, p.worse, []) == pytest.approx(there)
    finally:
        critic.debias = True


def test_the_embedded_critic_endpoint_is_started_for_the_run(monkeypatch) -> None:
    from rl.trainer import Services

    monkeypatch.delenv(EMBEDDED_URL_ENV, raising=False)
    config = load_config("configs/grpo/demo.yaml")
    assert config.critic is not None and config.critic.endpoint == "embedded"

    async def ask(endpoint) -> str:
        async with ChatClient(endpoint) as client:
            result = await client.chat([Message(role="user", content="Say hi.")], max_tokens=4)
        return result.content or ""

    import asyncio

    with Services(config) as services:
        endpoint = services.critic_endpoint()
        assert endpoint.base_url.startswith("http://127.0.0.1:")
        assert services.critic_endpoint().base_url == endpoint.base_url  # one server
        assert asyncio.run(ask(endpoint))


@pytest.mark.slow
def test_one_dpo_round_changes_the_weights_and_the_judgments(critic: LocalCritic) -> None:
    before = {k: v.detach().clone() for k, v in critic.model.named_parameters()}
    margins = [critic.margin(p.prompt, p.better, p.worse, []) for p in PAIRS]
    critic.refine(PAIRS[:1])
    changed = sum(
        float((before[k] - v.detach()).abs().sum()) for k, v in critic.model.named_parameters()
    )
    assert changed > 0 and critic.version == 1
    decoder = critic.model.get_decoder()
    top, bottom = decoder.layers[-1], decoder.layers[0]
    prefix = {id(p): n for n, p in critic.model.named_parameters()}
    moved = {
        prefix[id(p)]
        for module in (top, bottom, decoder.embed_tokens)
        for p in module.parameters()
        if not bool((before[prefix[id(p)]] == p.detach()).all())
    }
    # train_layers (4 by default): the top layer learns, the bottom one and the embeddings
    # (tied to the LM head) stay as they were
    assert any(f".layers.{len(decoder.layers) - 1}." in n for n in moved)
    assert not any(".layers.0." in n or "embed_tokens" in n for n in moved)
    after = [critic.margin(p.prompt, p.better, p.worse, []) for p in PAIRS]
    assert after != margins  # the refined weights are the ones judging now
