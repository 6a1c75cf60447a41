"""The SFT dataset: conversations read from synthesis runs and JSONL/parquet files, checked,
split by id, and tokenized with the mask of the tokens the loss is taken on.

A row is OpenAI chat ``messages`` (tool calls with JSON-string ``arguments``, as the
synthesis writes them and as :class:`llm.types.Message` holds them) plus optional ``tools``
and ``id``. Every row is checked before anything trains: a file without rows, a row
without messages, a malformed message or tool call, or a conversation with no assistant
turn is a :class:`SFTDataError` naming the file, the line (JSONL) or row (parquet), and the
field.

:func:`template_messages` is the one place our messages become what a chat template takes
(``arguments`` as objects: the templates render them with ``tojson``). The rows are
tokenized here, not by TRL, for that reason: in an Arrow column the ``arguments`` objects of
every call would share one struct type, and a call would render the other tools' argument
names as ``null``. :func:`tokenize` asks transformers for the assistant mask TRL itself
asks for (``return_assistant_tokens_mask`` with a template's ``{% generation %}`` markers);
TRL turns that mask into labels, truncates and drops rows left without loss.

Not here: the template choice (:mod:`rl.sft`), training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llm.errors import ConfigError
from llm.types import Message
from llm.yamlconf import error_message, format_loc
from rl.sft_config import DataSource, SFTRunConfig

ACCEPTED = Path("data") / "accepted"
"""Where a synthesis run directory keeps its accepted trajectories."""
_HASH_SPAN = 2**64


class SFTDataError(ConfigError):
    """A data source cannot be trained on; ``str()`` is one line: where, field, why."""


@dataclass(frozen=True)
class Conversation:
    """One checked row, ready for a chat template."""

    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None


@dataclass(frozen=True)
class Split:
    """Checked conversations: to train on, to evaluate on, and how many of the latter were
    held out of ``data`` (the rest came from ``eval_data``)."""

    train: list[Conversation]
    eval: list[Conversation]
    held_out: int


@dataclass(frozen=True)
class SFTData:
    """The tokenized train and eval sets (``input_ids`` + ``assistant_masks``) and counts."""

    train: Any
    eval: Any | None
    train_rows: int
    eval_rows: int
    held_out: int
    """Rows of ``data`` that went to the eval split (``eval_fraction``)."""
    truncated: int
    """Rows (train and eval) longer than ``max_length``, cut at the end."""
    dropped: int
    """Rows whose assistant tokens all lie past ``max_length``: TRL drops them."""


def template_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Our messages as a chat template renders them: text content (never None), tool calls
    with their ``arguments`` parsed to objects. ``ValueError`` for arguments that are not
    a JSON object, naming the message and call."""
    out = []
    for index, message in enumerate(messages):
        item: dict[str, Any] = {"role": message.role, "content": _text(message.content)}
        if message.tool_calls:
            calls = []
            for number, call in enumerate(message.tool_calls):
                try:
                    arguments = call.function.parsed_arguments()
                except ValueError:
                    where = f"messages[{index}].tool_calls[{number}].function.arguments"
                    raise ValueError(f"{where}: not a JSON object") from None
                function = {"name": call.function.name, "arguments": arguments}
                calls.append({"id": call.id, "type": "function", "function": function})
            item["tool_calls"] = calls
        for key in ("tool_call_id", "name"):
            if getattr(message, key):
                item[key] = getattr(message, key)
        out.append(item)
    return out


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):  # content parts: the text ones
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content or ""


def read_source(source: DataSource) -> list[Conversation]:
    """The checked conversations of one source (``max_rows`` applied)."""
    conversations: list[Conversation] = []
    for where, row in _rows(source.path):
        if source.max_rows is not None and len(conversations) >= source.max_rows:
            break
        conversations.append(_conversation(where, row))
    if not conversations:
        raise SFTDataError(f"{source.path}: no rows")
    return conversations


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    """``(where, row)`` for every row of a source; ``where`` is ``file:line`` or ``file: row N``."""
    if path.is_dir():
        shards = sorted((path / ACCEPTED).glob("*.parquet"))
        if not shards:
            raise SFTDataError(
                f"{path}: no accepted shards ({ACCEPTED}/*.parquet): not a synthesis run "
                "directory, or it accepted nothing yet"
            )
        for shard in shards:
            yield from _parquet_rows(shard)
    elif path.suffix == ".parquet":
        yield from _parquet_rows(path)
    elif path.suffix == ".jsonl":
        from rl.gyms.base import GymError, json_lines

        try:
            yield from json_lines(path)
        except GymError as exc:  # not text, not JSON, no rows: one line naming the place
            raise SFTDataError(str(exc)) from None
    else:
        raise SFTDataError(
            f"{path}: expected a synthesis run directory or a .jsonl or .parquet file"
        )


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise SFTDataError(f"{path}: not a readable parquet file: {exc}") from None
    if "messages" not in table.column_names:
        columns = ", ".join(table.column_names) or "none"
        raise SFTDataError(f"{path}: no messages column (columns: {columns})")
    for number, row in enumerate(table.to_pylist()):
        yield f"{path}: row {number}", row


def _conversation(where: str, row: Any) -> Conversation:
    if not isinstance(row, dict):
        raise SFTDataError(f"{where}: expected an object with messages, got {type(row).__name__}")
    raw = row.get("messages")
    if not isinstance(raw, list) or not raw:
        got = "missing" if raw is None else "not a non-empty list"
        raise SFTDataError(f"{where}: messages: {got} (each row needs OpenAI chat messages)")
    messages = []
    for index, message in enumerate(raw):
        try:
            messages.append(Message.model_validate(message))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = format_loc(("messages", index, *err["loc"]))
            raise SFTDataError(f"{where}: {field}: {error_message(err)}") from None
    if not any(m.role == "assistant" for m in messages):
        raise SFTDataError(f"{where}: messages: no assistant turn to learn from")
    try:
        rendered = template_messages(messages)
    except ValueError as exc:
        raise SFTDataError(f"{where}: {exc}") from None
    tools = _tools(where, row.get("tools"))
    return Conversation(id=_row_id(row, rendered, tools), messages=rendered, tools=tools)


def _tools(where: str, tools: Any) -> list[dict[str, Any]] | None:
    if isinstance(tools, str):
        try:
            tools = json.loads(tools or "null")
        except json.JSONDecodeError as exc:
            raise SFTDataError(f"{where}: tools: not JSON: {exc.msg}") from None
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise SFTDataError(f"{where}: tools: expected a list of OpenAI tool definitions")
    return tools or None


def _row_id(row: dict[str, Any], messages: list[dict[str, Any]], tools: Any) -> str:
    """The row's ``id`` when it has one, else a hash of its content."""
    if row.get("id") not in (None, ""):
        return str(row["id"])
    blob = json.dumps([messages, tools], sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def held_out(row_id: str, fraction: float) -> bool:
    """Whether the row goes to the eval split: a hash of its id, below ``fraction``.

    The same row falls on the same side whatever the seed, the sources' order or the other
    rows, so eval losses of different runs over the same data compare."""
    digest = hashlib.sha256(row_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * _HASH_SPAN


def tokenize(conversation: Conversation, tokenizer: Any, chat_template: str) -> dict[str, Any]:
    """``input_ids`` and ``assistant_masks`` (1 on each token inside an assistant turn's
    ``{% generation %}`` block of ``chat_template``) for one conversation."""
    encoded = tokenizer.apply_chat_template(
        conversation.messages,
        tools=conversation.tools,
        chat_template=chat_template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    return {
        "input_ids": list(encoded["input_ids"]),
        "assistant_masks": list(encoded["assistant_masks"]),
    }


def read_data(config: SFTRunConfig) -> Split:
    """Every source read and checked, and the eval split made (no tokenizer needed, so bad
    data fails before a model loads)."""
    train: list[Conversation] = []
    evaluation: list[Conversation] = []
    for source in config.data:
        for conversation in read_source(source):
            if config.eval_fraction and held_out(conversation.id, config.eval_fraction):
                evaluation.append(conversation)
            else:
                train.append(conversation)
    held = len(evaluation)
    for source in config.eval_data:
        evaluation.extend(read_source(source))
    if not train:
        raise SFTDataError(
            f"eval_fraction {config.eval_fraction} held out all {held} rows of data: none left "
            "to train on"
        )
    return Split(train, evaluation, held)


def tokenized(split: Split, tokenizer: Any, chat_template: str, max_length: int) -> SFTData:
    """The datasets TRL trains and evaluates on, with what ``max_length`` will cut counted."""
    from datasets import Dataset

    train = [tokenize(c, tokenizer, chat_template) for c in split.train]
    evaluation = [tokenize(c, tokenizer, chat_template) for c in split.eval]
    rows = train + evaluation
    if all(1 not in r["assistant_masks"][:max_length] for r in train):
        raise SFTDataError(
            f"max_length {max_length}: every training row's assistant tokens lie past it; "
            "raise training.max_length"
        )
    return SFTData(
        train=Dataset.from_list(train),
        eval=Dataset.from_list(evaluation) if evaluation else None,
        train_rows=len(train),
        eval_rows=len(evaluation),
        held_out=split.held_out,
        truncated=sum(len(r["input_ids"]) > max_length for r in rows),
        dropped=sum(1 not in r["assistant_masks"][:max_length] for r in rows),
    )
