"""Endpoint presets and bad configuration: each failure is one clear line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llm.client import ChatClient
from llm.endpoints import get_endpoint, load_presets, local_endpoint
from llm.errors import ConfigError, ProviderError
from llm.types import Message
from llm.yamlconf import YamlConfigError, apply_overrides


def test_shipped_presets_validate_and_include_k2() -> None:
    presets = load_presets()
    assert {"embedded", "kimi-k2", "openrouter-kimi-k2", "vllm", "openai-compatible"} <= set(
        presets
    )
    assert presets["kimi-k2"].api_key_env == "MOONSHOT_API_KEY"
    assert presets["kimi-k2"].models["thinking"]


def test_unknown_preset_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        get_endpoint("kimi-k3")
    message = str(info.value)
    assert "'kimi-k3'" in message and "kimi-k2" in message and "\n" not in message


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set MOONSHOT_API_KEY"):
        get_endpoint("kimi-k2")


def test_key_from_environment_and_named_model_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-test")
    endpoint = get_endpoint("kimi-k2", model="thinking", max_concurrency=3)
    assert endpoint.api_key == "sk-test" and "sk-test" not in repr(endpoint)
    assert endpoint.model == "kimi-k2-thinking" and endpoint.temperature == 1.0
    assert endpoint.max_concurrency == 3 and endpoint.price.output_per_mtok > 0


def test_embedded_preset_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUMMIT_EMBEDDED_URL", raising=False)
    with pytest.raises(ConfigError, match="python -m llm serve"):
        get_endpoint("embedded")


def test_vllm_base_url_comes_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="set VLLM_BASE_URL"):
        get_endpoint("vllm")
    monkeypatch.setenv("VLLM_BASE_URL", "http://127.0.0.1:8000/v1/")
    assert get_endpoint("vllm").base_url == "http://127.0.0.1:8000/v1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_url_is_one_clear_line() -> None:
    endpoint = local_endpoint(
        f"http://127.0.0.1:{_free_port()}/v1", name="nowhere", max_retries=1, backoff_base_s=0.01
    )
    async with ChatClient(endpoint) as client:
        with pytest.raises(ProviderError) as info:
            await client.chat([Message(role="user", content="hi")])
    message = str(info.value)
    assert "'nowhere'" in message and "connection error" in message and "\n" not in message


def test_malformed_presets_file_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "endpoints.yaml"
    bad.write_text(
        "mine:\n  base_url: http://127.0.0.1:1/v1\n  model: m\n"
        "  max_concurrency: 0\n  colour: red\n"
    )
    with pytest.raises(YamlConfigError) as info:
        load_presets(bad)
    problems = info.value.problems
    assert f"{bad}:4: mine.max_concurrency: Input should be greater than or equal to 1" in problems
    assert f"{bad}:5: mine.colour: unknown field" in problems


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "endpoints.yaml"
    bad.write_text("mine:\n  model: [unclosed\n")
    with pytest.raises(YamlConfigError, match=rf"{bad}:\d+: invalid YAML"):
        load_presets(bad)


def test_overrides_set_nested_keys_with_yaml_values() -> None:
    data = apply_overrides({"a": {"b": 1}}, ["a.b=3", "a.c=[1, 2]", "d.e=true"])
    assert data == {"a": {"b": 3, "c": [1, 2]}, "d": {"e": True}}
    with pytest.raises(YamlConfigError, match=r"expected key\.path=value"):
        apply_overrides({}, ["novalue"])
