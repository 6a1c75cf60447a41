"""Agentic RL end to end: configs/grpo/demo-agentic.yaml's tasks of every kind (executable,
simulated, MCP, Docker, ask-the-user) in one real GRPO step of the embedded policy through
``rl.trainer.build``, with the scripted world on loopback as simulated user, tool simulator
and judge, a real ``mcp-server-time`` process and the real Docker sandbox pool.

What the untrained policy does in its turns is up to it (it rarely ends a turn within the
budget), so user turns and tool calls with scripted policy turns are pinned in
tests/rl/test_multiturn.py and each kind's tools in tests/rl/test_environments.py; this
test pins that every kind is routed, played, finished and rewarded in one real step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llm.testing import ScriptedEndpoint
from synth.testing import ScriptedWorld

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("executable", "simulated", "mcp", "docker")


@pytest.fixture(scope="module")
def agentic_run(module_dir: Path, sandbox_image: str) -> Any:
    from rl import trl_seam
    from rl.config import load_config
    from rl.trainer import Services, build

    out = module_dir
    world = ScriptedWorld()
    with ScriptedEndpoint(world) as server, pytest.MonkeyPatch.context() as patch:
        presets = yaml.safe_load((ROOT / "configs" / "endpoints.yaml").read_text())
        presets["scripted"] = {
            "base_url": server.url,
            "api_key_required": False,
            "model": "scripted",
            "json_schema": True,
        }
        (out / "endpoints.yaml").write_text(yaml.safe_dump(presets))
        patch.setenv("SUMMIT_ENDPOINTS", str(out / "endpoints.yaml"))
        raw = yaml.safe_load((ROOT / "configs" / "grpo" / "demo-agentic.yaml").read_text())
        gym = raw["gyms"][0]
        gym["max_tokens"] = None
        gym["options"]["path"] = str(ROOT / gym["options"]["path"])
        gym["options"]["user"]["endpoint"] = "scripted"
        gym["options"]["simulator"]["endpoint"] = "scripted"
        (out / "config.yaml").write_text(yaml.safe_dump(raw))
        config = load_config(
            out / "config.yaml",
            overrides=[
                f"output_dir={out}",
                "grpo.max_steps=1",
                "grpo.per_device_train_batch_size=10",
                "grpo.max_completion_length=64",
                "judge.endpoint=scripted",
                "dataset_size=5",
                "logging.report_to=[]",
                "logging.progress=false",
            ],
        )
        with Services(config) as services:
            trainer = build(config, services)
            trainer.train()
            environments = [
                env
                for pool in trl_seam.environment_pool(trainer).values()
                for env in pool
                if getattr(env, "task", None)  # not the plain environment of text rows
            ]
            yield {"trainer": trainer, "environments": environments, "world": world}


@pytest.mark.integration
def test_every_kind_is_played_in_one_grpo_step(agentic_run: dict[str, Any]) -> None:
    played = agentic_run["environments"]
    kinds = {env.task["environment"] for env in played}
    assert kinds == set(KINDS), kinds
    ids = {env.task["id"] for env in played}
    assert {"demo-exec", "demo-sim", "demo-mcp", "demo-docker", "ask-0"} <= ids
    for env in played:
        assert env.failure is None, (env.task["id"], env.failure)
        assert env.policy_tokens > 0  # the loop ran and counted the policy's own tokens


@pytest.mark.integration
def test_the_step_logged_agentic_and_reward_metrics(agentic_run: dict[str, Any]) -> None:
    history = agentic_run["trainer"].state.log_history
    logged = {k for entry in history for k in entry}
    assert {"agentic/user_turns", "agentic/tool_calls", "agentic/failures"} <= logged
    assert any(k.startswith("rewards/tool_use") for k in logged)
    assert agentic_run["trainer"].state.global_step == 1
