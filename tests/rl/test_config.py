"""TrainConfig errors name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm.yamlconf import YamlConfigError
from rl.config import load_config

GOOD = """\
name: t
output_dir: runs/t
gyms:
  - gym: math
    options: {count: 4}
grpo: {max_steps: 1, per_device_train_batch_size: 4, num_generations: 2}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_a_good_config_loads_and_set_overrides_apply(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), ["grpo.max_steps=3", "temperature.end=0.5"])
    assert config.grpo.max_steps == 3 and config.temperature.end == 0.5
    assert config.logging.report_to == ["tensorboard"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("gym: math", "gym: poetry"), r"c.yaml:4: gyms\[0\]: .*unknown gym 'poetry'"),
        (
            ("{count: 4}", "{count: 4, colour: red}"),
            r"c.yaml:4: gyms\[0\]: .*options.colour: unknown",
        ),
        (("{count: 4}", "{count: -1}"), r"gyms\[0\]: .*options.count: Input should be greater"),
        (("max_steps: 1", "max_steps: zero"), r"c.yaml:6: grpo.max_steps: Input should be a valid"),
        (("num_generations: 2", "num_generations: 3"), r"multiple of num_generations \(3\)"),
        (("name: t", "name: t\nlearning_rate: 1"), r"c.yaml:2: learning_rate: unknown field"),
        (
            ("max_steps: 1", "max_steps: 1, extra: {warp_speed: 9}"),
            r"not GRPOConfig fields: warp_speed",
        ),
        (("max_steps: 1", "max_steps: 1, loss_type: ppo"), r"grpo.loss_type: Input should be"),
    ],
)
def test_bad_fields_are_named_with_file_and_line(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(YamlConfigError, match=message):
        load_config(write(tmp_path, GOOD.replace(*edit)))


def test_a_budget_above_the_completion_cap_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("gym: math", "gym: math\n    max_tokens: 999")
    with pytest.raises(YamlConfigError, match=r"999 exceeds grpo\.max_completion_length"):
        load_config(write(tmp_path, text))


def test_grpo_extra_fields_pass_through_to_trl(tmp_path: Path) -> None:
    from rl.trainer import grpo_args

    text = GOOD.replace("max_steps: 1", "max_steps: 1, extra: {top_k: 5}")
    args = grpo_args(load_config(write(tmp_path, text)))
    assert args.top_k == 5 and args.num_generations == 2 and args.reward_weights == [1.0]


def test_the_cli_prints_config_errors_and_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rl.__main__ import app

    result = CliRunner().invoke(
        app, ["train", str(write(tmp_path, GOOD.replace("gym: math", "gym: x")))]
    )
    assert result.exit_code == 2
    assert "unknown gym 'x'" in result.output


def test_the_demo_and_k2_configs_validate() -> None:
    root = Path(__file__).resolve().parents[2] / "configs" / "grpo"
    demo, k2 = load_config(root / "demo.yaml"), load_config(root / "k2.yaml")
    assert {"math", "ifeval", "tool_use"} <= {g.gym for g in demo.gyms}
    assert k2.grpo.use_vllm and k2.grpo.vllm_mode == "colocate"


def test_the_agentic_demo_routes_a_task_of_every_kind_with_the_user_on() -> None:
    from rl.gyms import build_gym

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "configs" / "grpo" / "demo-agentic.yaml")
    (entry,) = config.gyms
    options = dict(entry.options, path=str(root / entry.options["path"]))
    gym = build_gym(entry.gym, options)
    kinds = {key.split(":")[0] for key in {r["environment"] for r in gym.rows("train")}}
    assert kinds == {"executable", "simulated", "mcp", "docker"}
    assert options["user"]["max_user_turns"] >= 1
