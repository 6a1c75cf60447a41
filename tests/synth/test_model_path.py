"""A synthesis role on a checkpoint (``model_path``): checked with the config, served by
its own embedded server, the other roles left where they were."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from llm import Endpoint
from llm.testing import ScriptedEndpoint
from llm.yamlconf import YamlConfigError
from synth.config import ROLES, SynthConfig, load_config

from .conftest import small_config


def write_config(tmp_path: Path, agent: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(f"output_dir: {tmp_path / 'out'}\nendpoints:\n  agent: {agent}\n")
    return path


@pytest.mark.parametrize(
    ("agent", "problem"),
    [
        ("{preset: kimi-k2, model_path: ckpt}", "use it with preset embedded, not 'kimi-k2'"),
        ("{model_path: ckpt, base_url: 'http://h/v1'}", "leave base_url unset"),
        ("{model_path: ckpt, model: other}", "leave model unset"),
    ],
)
def test_model_path_goes_with_the_embedded_preset_alone(
    tmp_path: Path, agent: str, problem: str
) -> None:
    with pytest.raises(YamlConfigError) as caught:
        load_config(write_config(tmp_path, agent))
    assert str(caught.value).startswith(f"{tmp_path / 'job.yaml'}:3: endpoints.agent")
    assert problem in str(caught.value)


def test_a_model_path_that_is_not_a_model_fails_with_the_config(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    config = write_config(tmp_path, f"{{model_path: {tmp_path / 'ckpt'}}}")
    load_config(config)  # not checked unless asked
    with pytest.raises(YamlConfigError) as caught:
        load_config(config, check_files=True)
    line = str(caught.value)
    assert line.startswith(f"{config}:3: endpoints.agent.model_path: ")
    assert f"{tmp_path / 'ckpt'}: not a Hugging Face model directory: no config.json" in line


def test_roles_on_a_checkpoint_are_not_the_embedded_model(tmp_path: Path) -> None:
    on = {"preset": "embedded", "model_path": "runs/sft/final"}
    config = small_config(
        tmp_path, endpoints={"agent": on, "user": on, "judge": {"model_path": "runs/grpo/final"}}
    )
    assert config.roles_on("embedded") == ["generator", "tool_simulator"]
    assert config.checkpoints() == [Path("runs/sft/final"), Path("runs/grpo/final")]
    assert config.content_hash() != small_config(tmp_path).content_hash()
    with pytest.raises(ValueError, match="is served here: pass EmbeddedServers"):
        config.endpoint("agent")


@pytest.mark.integration
def test_a_role_on_a_checkpoint_is_served_by_its_own_server(tmp_path: Path) -> None:
    from llm.embedded.model import ensure_converted
    from synth.pipeline import embedded_servers, preflight

    checkpoint = tmp_path / "agent-v2"
    shutil.copytree(ensure_converted(), checkpoint)
    with ScriptedEndpoint() as scripted:
        elsewhere = {"preset": "embedded", "base_url": scripted.url}
        roles = {r: elsewhere for r in ("generator", "user", "tool_simulator", "judge")}
        endpoints = {**roles, "agent": {"model_path": str(checkpoint), "max_concurrency": 3}}
        config = SynthConfig.model_validate(
            {"output_dir": str(tmp_path / "out"), "endpoints": endpoints},
            context={"check_files": True},
        )
        with embedded_servers(config, Console(quiet=True)) as servers:
            resolved: dict[str, Endpoint] = {r: config.endpoint(r, servers) for r in ROLES}
            asyncio.run(preflight(resolved))  # every role answers
            assert servers is not None
            assert resolved["agent"].base_url == servers.server(checkpoint).url
    assert (resolved["agent"].model, resolved["agent"].max_concurrency) == ("agent-v2", 3)
    assert {resolved[r].base_url for r in roles} == {scripted.url.rstrip("/")}
    assert len(scripted.requests) == 1  # the preflight of the roles left on it
