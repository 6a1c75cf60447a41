"""The judge and the critic of a training run on a local checkpoint (``model_path``):
checked with the config, served once by the run's services."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from llm.yamlconf import YamlConfigError
from rl.config import load_config
from rl.trainer import Services

BASE = """\
name: t
output_dir: {out}
gyms:
  - gym: math
    options: {{count: 4}}
grpo: {{max_steps: 1, per_device_train_batch_size: 4, num_generations: 2}}
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(BASE.format(out=tmp_path / "out") + extra)
    return path


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("judge: {endpoint: kimi-k2, model_path: ckpt}\n", "not 'kimi-k2'"),
        ("judge: {model_path: ckpt, model: other}\n", "leave model unset"),
        ("critic: {model_path: ckpt, local_model: embedded}\n", "leave local_model unset"),
    ],
)
def test_model_path_goes_with_the_embedded_endpoint_alone(
    tmp_path: Path, extra: str, problem: str
) -> None:
    with pytest.raises(YamlConfigError, match=problem):
        load_config(write(tmp_path, extra))


def test_a_judge_model_path_that_is_not_a_model_fails_with_the_config(tmp_path: Path) -> None:
    config = write(tmp_path, f"judge: {{model_path: {tmp_path / 'nowhere'}}}\n")
    with pytest.raises(YamlConfigError) as caught:
        load_config(config, check_files=True)
    assert str(caught.value).startswith(f"{config}:7: judge.model_path: ")
    assert "no such directory" in str(caught.value)


@pytest.mark.integration
def test_judge_and_critic_on_one_checkpoint_share_its_server(tmp_path: Path) -> None:
    from llm.embedded.model import ensure_converted

    checkpoint = tmp_path / "critic-v1"
    shutil.copytree(ensure_converted(), checkpoint)
    extra = f"judge: {{model_path: {checkpoint}}}\ncritic: {{model_path: {checkpoint}}}\n"
    config = load_config(write(tmp_path, extra), check_files=True)
    with Services(config) as services:
        judge = services.resources.get("judge")
        critic = services.critic_endpoint()
        server = services.servers.server(checkpoint)
        assert judge.base_url == critic.base_url == server.url
    assert (judge.model, critic.model) == ("critic-v1", "critic-v1")
    with pytest.raises(urllib.error.URLError):  # stopped with the run
        urllib.request.urlopen(f"{server.url}/models", timeout=5)
