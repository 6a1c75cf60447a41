"""Endpoint presets: which URL, model, key, limits and prices a name stands for.

Presets live in ``configs/endpoints.yaml`` (or the file named by ``SUMMIT_ENDPOINTS``).
:func:`get_endpoint` resolves one into an :class:`Endpoint`, reading base URLs and keys
from the environment variables the preset names, and fails with a one-line
:class:`~llm.errors.ConfigError` naming the preset or the variable when it cannot.

Example::

    endpoint = get_endpoint("kimi-k2", model="thinking")   # needs MOONSHOT_API_KEY
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    ValidationInfo,
)

from llm.errors import ConfigError
from llm.yamlconf import (
    YamlConfigError,
    checking_files,
    load_yaml,
    require_mapping,
    validation_problems,
)

DEFAULT_PRESETS = Path(__file__).resolve().parents[1] / "configs" / "endpoints.yaml"
EMBEDDED_URL_ENV = "SUMMIT_EMBEDDED_URL"


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(0.0, ge=0)
    """Price of one million prompt tokens."""
    output_per_mtok: float = Field(0.0, ge=0)
    """Price of one million completion tokens."""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6


class Limits(BaseModel):
    """How hard and how patiently Summit talks to an endpoint."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(16, ge=1)
    """Requests in flight at once from one client; excess requests wait their turn."""
    adaptive_concurrency: bool = True
    """Halve the requests in flight on timeouts, 429s, 5xx and answers slower than half the
    timeout, and grow back towards ``max_concurrency`` as answers come quickly again
    (``llm.concurrency``); false keeps ``max_concurrency`` fixed."""
    timeout_s: float = Field(120.0, gt=0)
    """Per-request timeout; a request that takes longer is retried."""
    deadline_s: float | None = Field(None, gt=0)
    """Total time one request may take from its first try, retries and waits between them
    included; no try starts after it and none runs past it. None: three timeouts."""
    max_retries: int = Field(6, ge=0)
    """Retries after the first try on 429, 5xx, timeouts, connection and body errors."""
    backoff_base_s: float = Field(0.5, ge=0)
    """First backoff; doubles each retry (full jitter), unless the server sends Retry-After."""
    backoff_max_s: float = Field(30.0, ge=0)
    """Cap on a single backoff sleep (Retry-After included)."""


class EndpointPreset(Limits):
    """One entry of ``configs/endpoints.yaml``."""

    description: str = ""
    """What this endpoint is, for `python -m llm endpoints`."""
    base_url: str | None = None
    """Fixed base URL (…/v1). Either this or ``base_url_env``."""
    base_url_env: str | None = None
    """Environment variable holding the base URL; wins over ``base_url`` when set."""
    api_key_env: str | None = None
    """Environment variable holding the API key."""
    api_key_required: bool = True
    """When false a missing key is sent as a placeholder (local servers)."""
    model: str
    """Default model name sent in requests."""
    model_env: str | None = None
    """Environment variable that overrides ``model`` when set."""
    models: dict[str, str] = Field(default_factory=dict)
    """Named variants (``instruct``, ``thinking``) accepted wherever a model name is."""
    temperature: float | None = None
    """Recommended sampling temperature, used when a request gives none."""
    model_temperatures: dict[str, float] = Field(default_factory=dict)
    """Per-model recommended temperature, overriding ``temperature``."""
    json_schema: bool = True
    """The endpoint honours ``response_format`` with a JSON schema; else the repair loop is used."""
    price: Price = Field(default_factory=Price)
    """Token prices for cost accounting."""


class Endpoint(Limits):
    """A resolved endpoint, ready for :class:`llm.client.ChatClient`."""

    name: str
    base_url: str
    api_key: str = Field(repr=False)
    model: str
    temperature: float | None = None
    json_schema: bool = True
    price: Price = Field(default_factory=Price)


class _PresetFile(RootModel[dict[str, EndpointPreset]]):
    pass


def presets_path() -> Path:
    return Path(os.environ.get("SUMMIT_ENDPOINTS", DEFAULT_PRESETS))


@lru_cache(maxsize=8)
def _load_presets(path: Path, mtime: float) -> dict[str, EndpointPreset]:
    data, node = load_yaml(path)
    require_mapping(data, node, path, "endpoint presets")
    try:
        return _PresetFile.model_validate(data).root
    except ValidationError as exc:
        raise YamlConfigError(validation_problems(exc, path, node)) from exc


def load_presets(path: str | Path | None = None) -> dict[str, EndpointPreset]:
    """All presets in ``path`` (default: ``configs/endpoints.yaml``), validated."""
    file = Path(path) if path is not None else presets_path()
    if not file.exists():
        raise ConfigError(f"endpoint presets file not found: {file} (set SUMMIT_ENDPOINTS)")
    return _load_presets(file, file.stat().st_mtime)


def check_preset(name: str) -> None:
    """For config validators: ``ValueError`` (one line) unless the presets file loads and
    lists ``name`` — checked with the config, not after models started."""
    try:
        presets = load_presets()
    except ConfigError as exc:
        raise ValueError("; ".join(str(exc).splitlines())) from None
    if name not in presets:
        known = ", ".join(sorted(presets))
        raise ValueError(f"unknown endpoint preset {name!r} in {presets_path()}; known: {known}")


def _known_preset(name: str, info: ValidationInfo) -> str:
    if checking_files(info):
        check_preset(name)
    return name


PresetName = Annotated[str, AfterValidator(_known_preset)]
"""A config field naming an endpoint preset (checked under ``check_files``)."""


def get_endpoint(
    name: str,
    *,
    model: str | None = None,
    presets: dict[str, EndpointPreset] | None = None,
    **limits: float | int,
) -> Endpoint:
    """Resolve preset ``name`` into an :class:`Endpoint` using the environment.

    ``model`` may be a model name or one of the preset's named variants; ``limits``
    override :class:`Limits` fields (``max_concurrency=4``).
    """
    table = presets if presets is not None else load_presets()
    preset = table.get(name)
    if preset is None:
        raise ConfigError(f"unknown endpoint preset {name!r}; known: {', '.join(sorted(table))}")
    base_url = os.environ.get(preset.base_url_env, "") if preset.base_url_env else ""
    base_url = base_url or preset.base_url or ""
    if not base_url:
        if name == "embedded" or preset.base_url_env == EMBEDDED_URL_ENV:
            raise ConfigError(
                f"endpoint {name!r} is not running: start it with `python -m llm serve` and "
                f"export {EMBEDDED_URL_ENV}=<its URL>, or use llm.embedded.EmbeddedServer"
            )
        raise ConfigError(f"endpoint {name!r} needs a base URL: set {preset.base_url_env}")
    api_key = os.environ.get(preset.api_key_env, "") if preset.api_key_env else ""
    if not api_key:
        if preset.api_key_required:
            raise ConfigError(f"endpoint {name!r} needs an API key: set {preset.api_key_env}")
        api_key = "not-needed"
    chosen = model or (os.environ.get(preset.model_env, "") if preset.model_env else "")
    chosen = preset.models.get(chosen, chosen) or preset.model
    temperature = preset.model_temperatures.get(chosen, preset.temperature)
    fields = preset.model_dump(include=set(Limits.model_fields))
    fields.update(limits)
    return Endpoint(
        name=name,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        model=chosen,
        temperature=temperature,
        json_schema=preset.json_schema,
        price=preset.price,
        **fields,
    )


def local_endpoint(
    base_url: str, *, name: str = "local", model: str = "local", **fields: object
) -> Endpoint:
    """An endpoint for a server on loopback (embedded or scripted), no preset needed."""
    return Endpoint.model_validate(
        {
            "name": name,
            "base_url": base_url.rstrip("/"),
            "api_key": "not-needed",
            "model": model,
            **fields,
        }
    )
