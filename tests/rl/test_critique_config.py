"""The critic block of TrainConfig and its wiring into the GRPO reward functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llm.endpoints import EMBEDDED_URL_ENV
from llm.testing import ScriptedEndpoint
from llm.yamlconf import YamlConfigError
from rl.config import load_config
from rl.critique import CritiqueReward
from rl.gyms.base import Resources
from rl.trainer import build_gyms, critic_backend, grpo_args, reward_functions

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
name: t
output_dir: runs/t
gyms:
  - gym: math
    options: {count: 4}
critic:
  endpoint: embedded
  rubrics: [core]
  reward_weight: 0.25
grpo: {max_steps: 1, per_device_train_batch_size: 4, num_generations: 2}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["demo", "k2-critic"])
def test_shipped_configs_with_a_critic_load(name: str) -> None:
    config = load_config(ROOT / "configs" / "grpo" / f"{name}.yaml")
    assert config.critic is not None and config.critic.refinement.method == "in_context"


def test_the_critic_is_off_unless_configured(tmp_path: Path) -> None:
    text = (
        GOOD.split("critic:")[0]
        + "grpo: {max_steps: 1, per_device_train_batch_size: 4, num_generations: 2}\n"
    )
    assert load_config(write(tmp_path, text)).critic is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("rubrics: [core]", "rubrics: [poetry]"),
            r"c.yaml:7: critic: .*unknown rubric ids \['poetry'\]",
        ),
        (
            ("reward_weight: 0.25", "refinement: {method: dpo}"),
            r"c.yaml:7: critic: .*set local_model",
        ),
        (("reward_weight: 0.25", "pairing: roundabout"), r"c.yaml:9: critic.pairing"),
        (("reward_weight: 0.25", "gyms: [code]"), r"critic.gyms names gyms not in the mixture"),
        (("reward_weight: 0.25", "colour: red"), r"c.yaml:9: critic.colour"),
    ],
)
def test_critic_errors_name_file_line_and_field(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    with pytest.raises(YamlConfigError, match=message):
        load_config(write(tmp_path, GOOD.replace(*edit)))


REFUND = """\
id: refund
kind: task
description: Refund answers follow the shop's policy.
extends: [core]
criteria:
  - id: cites_policy
    description: Quotes the 30-day refund window.
    weight: 2
    scale: binary
"""


def test_a_users_own_rubric_files_give_the_critic_new_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "refund.yaml").write_text(REFUND)
    own = f"rubrics: [core, refund]\n  rubric_files: [{tmp_path / 'mine'}]"
    config = load_config(write(tmp_path, GOOD.replace("rubrics: [core]", own)))
    assert config.critic is not None and config.critic.rubrics == ["core", "refund"]
    monkeypatch.setenv(EMBEDDED_URL_ENV, "http://127.0.0.1:9/v1")  # resolved, never called
    backend = critic_backend(config, None)
    criteria = [c.id for _, c in backend.rubric_set.merged(["refund"])]
    assert criteria == [
        "clarity_relevance",
        "fluency_engagement",
        "objective_grounded",
        "cites_policy",
    ]
    # Without the file the id is unknown; a broken file is reported at its own line.
    with pytest.raises(YamlConfigError, match=r"unknown rubric ids \['refund'\]"):
        load_config(write(tmp_path, GOOD.replace("rubrics: [core]", "rubrics: [core, refund]")))
    (tmp_path / "mine" / "refund.yaml").write_text(REFUND.replace("weight: 2", "weight: -1"))
    with pytest.raises(YamlConfigError, match=r"refund.yaml:8: criteria\[0\].weight"):
        load_config(write(tmp_path, GOOD.replace("rubrics: [core]", own)))


async def test_the_critic_reward_comes_last_with_its_weight_and_reads_the_gym_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert grpo_args(config).reward_weights == [1.0, 0.25]

    def right_answer_wins(request: dict[str, Any]) -> str:
        text = request["messages"][0]["content"]
        a = text.index("Answer: 7") < text.index("<<<RESPONSE B") if "Answer: 7" in text else False
        return json.dumps({"reasoning": "checked", "winner": "A" if a else "B"})

    with ScriptedEndpoint(right_answer_wins) as server:
        monkeypatch.setenv(EMBEDDED_URL_ENV, server.endpoint().base_url)
        funcs = reward_functions(config, build_gyms(config, Resources()), tokenizer=None)
        assert [f.__name__ for f in funcs] == ["math", "critic"]
        kw: dict[str, Any] = {
            "gym": ["math", "math"],
            "task": ['{"answer": "7"}'] * 2,
            "completion_ids": [[1], [1]],
        }
        prompts = [[{"role": "user", "content": "3+4?"}]] * 2
        completions = [[{"role": "assistant", "content": f"Answer: {x}"}] for x in (8, 7)]
        assert await funcs[0](prompts, completions, **kw) == [0.0, 1.0]
        assert await funcs[1](prompts, completions, **kw) == [0.0, 1.0]
    critic = funcs[1].critique
    assert isinstance(critic, CritiqueReward)
    assert critic.metrics["critic/agreement/math"] == 1.0
