"""The one place SFT meets TRL: an :class:`SFTRunConfig` becomes ``SFTConfig`` + ``SFTTrainer``,
trains, and leaves a model directory that ``python -m llm serve --model OUT/final`` serves.

:func:`train` does everything that can fail on bad input first — read and check every
conversation (:mod:`rl.sft_data`), load the tokenizer and the model, tokenize — and only
then writes into ``output_dir``: a bad data file, a directory that is not a model or an
untrainable chat template raises :class:`SFTError` and leaves the directory as it was.

The loss is taken on the assistant's tokens only, tool calls included: conversations are
rendered with the training variant of the serving template (the same text, plus TRL's
``{% generation %}`` markers around each assistant turn, from
``trl.chat_template_utils.get_training_chat_template``), and the tokens inside the markers
are the only ones with labels. For the embedded model's Hermes ChatML template that is,
per assistant turn, the newline after ``<|im_start|>assistant``, the content, every
``<tool_call>…</tool_call>``, ``<|im_end|>`` and the newline after it.

The result, ``OUT/final/``: the trained weights (a LoRA adapter merged into the base;
the adapter alone is kept in ``OUT/adapter/``) and the tokenizer with the serving template.
Checkpoints ``OUT/checkpoint-N`` every ``save_steps``; TensorBoard logs in ``OUT/runs``.

Not here: data reading (:mod:`rl.sft_data`), the config (:mod:`rl.sft_config`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import TextColumn

from llm.errors import ConfigError
from llm.progress import DEFAULT_EVERY_S
from rl.callbacks import RichProgress, train_to_end
from rl.sft_config import SFTRunConfig
from rl.sft_data import SFTData, read_data, tokenized

log = logging.getLogger(__name__)


class SFTError(ConfigError):
    """The run cannot start (a model that does not load, a chat template TRL cannot mark,
    nothing to resume from); ``str()`` is one line."""


@dataclass(frozen=True)
class Base:
    """The model to fine-tune, its tokenizer (holding the serving template) and the
    template conversations are rendered with for training."""

    model: Any
    tokenizer: Any
    training_template: str


def serving_tokenizer(config: SFTRunConfig) -> Any:
    """The tokenizer, its chat template the one the trained model will be served with."""
    if config.model == "embedded":
        from llm.embedded.model import load_tokenizer

        return load_tokenizer()
    from transformers import AutoTokenizer

    from llm.embedded.model import tool_chat_template

    tokenizer = _loaded(
        config.model, "tokenizer", lambda: AutoTokenizer.from_pretrained(config.model)
    )
    if config.chat_template == "hermes":
        tokenizer.chat_template = tool_chat_template()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def training_template(tokenizer: Any, model: str) -> str:
    """The serving template with ``{% generation %}`` markers: itself when it has them,
    else TRL's training variant of it (TRL knows the common families')."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = tokenizer.chat_template
    if not template:
        raise SFTError(f"{model}: the tokenizer has no chat template; use chat_template: hermes")
    if has_generation_markers(template):
        return str(template)
    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError:
        raise SFTError(
            f"{model}: TRL has no training variant of this chat template to mask the loss to "
            "assistant turns; use chat_template: hermes, or give the template "
            "{% generation %} markers"
        ) from None
    return str(patched or template)


def load_base(config: SFTRunConfig) -> Base:
    """Tokenizer, training template and model (float32 unless ``dtype`` says otherwise)."""
    from transformers import AutoModelForCausalLM

    tokenizer = serving_tokenizer(config)
    template = training_template(tokenizer, config.model)
    path = config.model
    if path == "embedded":
        from llm.embedded.model import ensure_converted

        path = str(ensure_converted())
    model = _loaded(
        config.model,
        "model",
        lambda: AutoModelForCausalLM.from_pretrained(path, dtype=config.dtype),
    )
    return Base(model, tokenizer, template)


def _loaded(path: str, what: str, load: Any) -> Any:
    """``load()``, or one line saying ``path`` holds no loadable ``what`` (transformers'
    own warnings about the directory held back: the line says it all)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return load()
    except Exception as exc:  # transformers raises many kinds for a broken directory
        why = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise SFTError(f"{path}: not a loadable {what}: {why}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)


def sft_args(config: SFTRunConfig, *, evaluate: bool) -> Any:
    """TRL's ``SFTConfig`` for this run. The rows come tokenized with their assistant mask
    (:mod:`rl.sft_data`), so TRL's own ``assistant_only_loss`` (which tokenizes
    ``messages`` itself) stays off: TRL builds the labels from the mask."""
    import torch
    from trl import SFTConfig

    t = config.training
    knobs = t.model_dump(exclude={"extra", "max_steps"})
    knobs["dataloader_pin_memory"] = torch.cuda.is_available()  # else a warning per pass
    return SFTConfig(
        output_dir=config.output_dir,
        seed=config.seed,
        max_steps=t.max_steps or -1,
        eval_strategy="steps" if evaluate else "no",
        save_strategy="steps",
        report_to=list(config.logging.report_to) or "none",
        disable_tqdm=config.logging.progress,
        assistant_only_loss=False,
        **{**knobs, **t.extra},
    )


class SFTProgress(RichProgress):
    """GRPO's progress display (bars on a terminal, a line every few seconds in a log),
    labelled SFT, with the latest training and eval loss."""

    def __init__(self, every_s: float = DEFAULT_EVERY_S) -> None:
        super().__init__(every_s=every_s)
        self.latest: dict[str, float] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        super().on_train_begin(args, state, control, **kwargs)
        if self.progress is not None:
            self.progress.columns = (TextColumn("[bold]SFT"), *self.progress.columns[1:])
            self.progress.update(self.task, description="SFT steps")

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if self.progress is None or not logs:
            return
        for key in ("loss", "eval_loss"):
            if isinstance(logs.get(key), int | float):
                self.latest[key] = float(logs[key])
        info = "  ".join(f"{key} {value:.3f}" for key, value in self.latest.items())
        self.progress.update(self.task, info=info)


def build(
    config: SFTRunConfig, base: Base, data: SFTData, *, progress_every_s: float = DEFAULT_EVERY_S
) -> Any:
    """The ready-to-train ``SFTTrainer``."""
    from trl import SFTTrainer

    callbacks: list[Any] = []
    if config.logging.progress:
        callbacks.append(SFTProgress(every_s=progress_every_s))
    return SFTTrainer(
        model=base.model,
        args=sft_args(config, evaluate=data.eval is not None),
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=base.tokenizer,
        callbacks=callbacks,
        peft_config=config.lora.to_peft() if config.lora else None,
    )


def resume_point(output_dir: Path, resume: str | bool) -> Path | None:
    """The checkpoint to resume from (``True``: the newest complete one), or None for a
    fresh run, which must not mix with an earlier run's checkpoints or final model."""
    from rl.trainer import latest_checkpoint

    if resume is True:
        found = latest_checkpoint(output_dir)
        if found is None:
            raise SFTError(f"--resume latest: no complete checkpoint in {output_dir}")
        return found
    if resume:
        path = Path(resume)
        if not (path / "trainer_state.json").is_file():
            raise SFTError(f"--resume {resume}: not a complete checkpoint (no trainer_state.json)")
        return path
    earlier = sorted(p.name for p in output_dir.glob("checkpoint-*")) + (
        ["final"] if (output_dir / "final").exists() else []
    )
    if earlier:
        raise SFTError(
            f"{output_dir}: holds an earlier run ({', '.join(earlier)}); continue it with "
            "--resume latest, or choose another output_dir"
        )
    return None


def save_final(trainer: Any, tokenizer: Any, output_dir: Path) -> tuple[Path, Path | None]:
    """``(final, adapter)``: the trained model as a complete directory (a LoRA adapter
    merged into the base, the adapter itself kept beside), the tokenizer with the serving
    template; ``final`` appears whole, by a rename."""
    from peft import PeftModel

    final, staging = output_dir / "final", output_dir / "final.partial"
    model = trainer.accelerator.unwrap_model(trainer.model)
    adapter = output_dir / "adapter" if isinstance(model, PeftModel) else None
    if not trainer.is_world_process_zero():  # one writer when several processes train
        return final, adapter
    shutil.rmtree(staging, ignore_errors=True)
    if adapter is not None:
        model.save_pretrained(str(adapter))
        model = model.merge_and_unload()
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    return final, adapter


def final_eval_loss(trainer: Any) -> float:
    """The eval loss of the trained weights: logged already when the last step evaluated,
    else measured now."""
    last = [e for e in trainer.state.log_history if "eval_loss" in e]
    if last and last[-1].get("step") == trainer.state.global_step:
        return float(last[-1]["eval_loss"])
    return float(trainer.evaluate()["eval_loss"])


def train(
    config: SFTRunConfig,
    *,
    resume: str | bool = False,
    progress_every_s: float = DEFAULT_EVERY_S,
) -> dict[str, Any]:
    """Fine-tune (or resume: ``True`` for the newest complete checkpoint, or a checkpoint
    path) and save ``final/``; returns a summary (steps, losses, rows, paths).

    Example::

        config = load_sft_config("configs/sft/demo.yaml", check_files=True)
        summary = train(config)  # {"global_step": 12, "final": "runs/sft/demo/final", ...}
    """
    out = Path(config.output_dir)
    checkpoint = resume_point(out, resume)
    split = read_data(config)
    base = load_base(config)
    data = tokenized(split, base.tokenizer, base.training_template, config.training.max_length)
    config.write(out)
    trainer = build(config, base, data, progress_every_s=progress_every_s)
    result = train_to_end(trainer, checkpoint)
    eval_loss = final_eval_loss(trainer) if data.eval is not None else None
    final, adapter = save_final(trainer, base.tokenizer, out)
    summary = {
        "name": config.name,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "eval_loss": eval_loss,
        "train_rows": data.train_rows,
        "eval_rows": data.eval_rows,
        "held_out": data.held_out,
        "truncated": data.truncated,
        "dropped": data.dropped,
        "final": str(final),
        "adapter": str(adapter) if adapter else None,
    }
    log.info("fine-tuned %s: %s", config.name, json.dumps(summary))
    return summary
