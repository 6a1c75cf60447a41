"""Serving a checkpoint: a saved model directory or a LoRA adapter behind the embedded
engine, reached through the real ``openai`` SDK; a directory that is not a model is one
line and exit 2 at the CLI, before anything loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from llm.demo import TOOLS
from llm.embedded import EmbeddedServer, EmbeddedServers
from llm.embedded.model import (
    check_checkpoint,
    converted_dir,
    ensure_converted,
    load_model,
    load_tokenizer,
    tool_chat_template,
)
from llm.errors import ConfigError
from llm.testing import ScriptedEndpoint

ROOT = Path(__file__).resolve().parents[2]
NUDGE = 0.01
"""Added to one weight of the saved copy, so the served weights are shown to be its own."""


@pytest.fixture(scope="module")
def checkpoint(module_dir: Path) -> Path:
    """The embedded model saved as a fine-tune would be (``save_pretrained``), one weight
    nudged, under its own directory name."""
    import torch

    model, tokenizer = load_model()
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight[0, 0] += NUDGE
    path = module_dir / "sft-final"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def adapter(module_dir: Path) -> tuple[Path, Any]:
    """A LoRA adapter of the embedded model as peft saves it (its base recorded by path),
    with non-zero weights, and the q_proj weight merging it should give."""
    from peft import LoraConfig, get_peft_model

    model, _ = load_model()
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    path = module_dir / "lora-agent"
    peft_model.save_pretrained(path)
    merged = peft_model.merge_and_unload()
    return path, merged.model.layers[0].self_attn.q_proj.weight.detach().clone()


def weather_call(url: str, model: str) -> Any:
    sdk = openai.OpenAI(base_url=url, api_key="x")
    return sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,
        tool_choice="required",
        max_tokens=80,
        seed=1,
    )


@pytest.mark.integration
def test_served_checkpoint_answers_a_required_tool_call_through_the_openai_sdk(
    checkpoint: Path,
) -> None:
    with EmbeddedServer(model_path=checkpoint, max_batch=2) as server:
        sdk = openai.OpenAI(base_url=server.url, api_key="x")
        assert [m.id for m in sdk.models.list().data] == ["sft-final"]
        reply = weather_call(server.url, "sft-final")
        served = server.engine.model.model.layers[0].self_attn.q_proj.weight[0, 0].item()
    base, _ = load_model()
    assert served == pytest.approx(
        base.model.layers[0].self_attn.q_proj.weight[0, 0].item() + NUDGE
    )
    assert reply.model == "sft-final"
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    assert call.function.name in schemas
    jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])


@pytest.mark.integration
def test_lora_adapter_is_merged_into_its_base_and_served_under_its_name(
    adapter: tuple[Path, Any],
) -> None:
    import torch

    path, expected = adapter
    model, _ = load_model(path)
    assert not any("lora" in name for name, _ in model.named_parameters())
    merged = model.model.layers[0].self_attn.q_proj.weight
    base, _ = load_model()
    assert torch.equal(merged, expected)
    assert not torch.equal(merged, base.model.layers[0].self_attn.q_proj.weight)
    with EmbeddedServer(model_path=path, max_batch=2) as server:
        reply = weather_call(server.url, "lora-agent")
    assert reply.model == "lora-agent"
    assert reply.choices[0].finish_reason == "tool_calls"


@pytest.mark.integration
def test_one_server_per_directory_however_it_is_spelled(checkpoint: Path) -> None:
    other = checkpoint.parent / ".." / checkpoint.parent.name / checkpoint.name
    with EmbeddedServers(max_batch=2) as servers:
        first = servers.endpoint(checkpoint, max_concurrency=3)
        assert servers.server(other) is servers.server(checkpoint)
    assert (first.model, first.max_concurrency) == ("sft-final", 3)
    with pytest.raises(RuntimeError, match="closed"):
        servers.server(checkpoint)


@pytest.mark.integration
def test_a_template_that_renders_tools_is_kept_and_one_that_does_not_is_replaced(
    tmp_path: Path,
) -> None:
    own = "{% for t in tools %}TOOL {{ t.function.name }}\n{% endfor %}{{ messages[-1].content }}"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ensure_converted() / name, tmp_path / name)
    (tmp_path / "chat_template.jinja").write_text(own)
    assert load_tokenizer(tmp_path).chat_template == own
    # SmolLM2's own template renders no tools: it gets the Hermes one
    (tmp_path / "chat_template.jinja").write_text(
        (ensure_converted() / "chat_template.jinja").read_text()
    )
    assert load_tokenizer(tmp_path).chat_template == tool_chat_template()


# ------------------------------------------------------------- not a model: one line
def _no_weights(root: Path) -> Path:
    (root / "config.json").write_text('{"model_type": "llama"}')
    return root


def _adapter_of(base: str) -> Callable[[Path], Path]:
    def make(root: Path) -> Path:
        (root / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
        (root / "adapter_model.safetensors").write_bytes(b"")
        return root

    return make


NOT_MODELS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda root: root / "nowhere", "no such directory"),
    "a file": (lambda root: _touch(root / "model.bin"), "not a model directory: a file"),
    "no config.json": (lambda root: root, "no config.json"),
    "no model_type": (lambda root: _write(root / "config.json", "{}"), "has no model_type"),
    "no weights": (_no_weights, "no weights"),
    "no tokenizer": (
        lambda root: _touch(_no_weights(root) / "model.safetensors").parent,
        "no tokenizer",
    ),
    "adapter without a base": (_adapter_of("/gone/base-model"), "'/gone/base-model' is not found"),
}


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path.parent


@pytest.mark.parametrize("case", sorted(NOT_MODELS))
def test_serving_what_is_not_a_model_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    make, reason = NOT_MODELS[case]
    path = make(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "llm", "serve", "--model", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), proc.stderr
    assert reason in lines[0]
    assert "serving" not in proc.stdout


def test_a_server_of_what_is_not_a_model_fails_before_it_starts(tmp_path: Path) -> None:
    server = EmbeddedServer(model_path=tmp_path)
    with pytest.raises(ConfigError, match=r"no config\.json"):
        server.start()
    assert server.port == 0  # never bound


def test_an_adapter_of_the_embedded_model_trained_elsewhere_finds_it_here(tmp_path: Path) -> None:
    elsewhere = "/home/someone/.cache/summit/models/smollm2-135m-instruct"
    found = check_checkpoint(_adapter_of(elsewhere)(tmp_path))
    assert found.base == converted_dir()
    assert found.is_adapter and found.tokenizer_dir == converted_dir()


@pytest.mark.integration
def test_the_default_model_is_the_users_running_server_when_one_is_named(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EmbeddedServers decides alone whether to start the default model: with
    SUMMIT_EMBEDDED_URL set it hands out that server and starts nothing; a checkpoint still
    gets its own server, announced."""
    from llm.endpoints import EMBEDDED_URL_ENV

    lines: list[str] = []
    with ScriptedEndpoint() as running:
        monkeypatch.setenv(EMBEDDED_URL_ENV, running.url)
        with EmbeddedServers(announce=lines.append, max_batch=2) as servers:
            default = servers.endpoint(max_concurrency=5)
            assert lines == []  # nothing started for the default model
            own = servers.endpoint(checkpoint)
    assert default.base_url == running.url.rstrip("/") and default.max_concurrency == 5
    assert own.base_url != default.base_url and own.model == "sft-final"
    assert lines == [f"serving the checkpoint {checkpoint} on 127.0.0.1 ..."]
