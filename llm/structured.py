"""Structured output: a pydantic model's JSON from a chat endpoint, validated.

:func:`complete_json` (what ``ChatClient.complete_json`` runs) asks with
``response_format`` and the model's JSON schema where the endpoint supports it, and else,
or once the endpoint answers 400 naming ``response_format`` (remembered on that client),
puts the schema in the prompt. Any other 400 is raised. Either way an answer that fails
validation is sent back with its errors, up to ``max_repairs`` times; then
:class:`~llm.errors.StructuredOutputError` carries the last text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from llm.endpoints import Endpoint
from llm.errors import ProviderError, StructuredOutputError
from llm.types import ChatResult, Message, as_wire_messages

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)


class JsonChat(Protocol):
    """What :func:`complete_json` needs of a client (``ChatClient`` is one)."""

    endpoint: Endpoint
    json_schema: bool

    @property
    def chat(self) -> Callable[..., Awaitable[ChatResult]]: ...


async def complete_json(
    client: JsonChat,
    messages: list[Message] | list[dict[str, Any]],
    schema: type[T],
    *,
    max_repairs: int = 2,
    **kwargs: Any,
) -> T:
    """Ask ``client`` for JSON matching ``schema`` and return it validated."""
    wire = as_wire_messages(messages)
    json_schema = schema.model_json_schema()
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": json_schema},
    }
    if not client.json_schema:
        wire = _with_schema_instruction(wire, json_schema)
    text = ""
    for attempt in range(max_repairs + 1):
        try:
            result = await client.chat(
                wire, response_format=response_format if client.json_schema else None, **kwargs
            )
        except ProviderError as exc:
            if not (client.json_schema and attempt == 0 and _rejects_response_format(exc)):
                raise
            log.info("%s rejected response_format; using the prompt instead", client.endpoint.name)
            client.json_schema = False
            wire = _with_schema_instruction(wire, json_schema)
            result = await client.chat(wire, **kwargs)
        text = result.content or ""
        try:
            return schema.model_validate_json(extract_json(text))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()[:8]
            )
        wire = [
            *wire,
            {"role": "assistant", "content": text},
            {
                "role": "user",
                "content": "That reply is not valid JSON for the schema: "
                f"{problems}. Reply with the corrected JSON object only.",
            },
        ]
    raise StructuredOutputError(
        f"{client.endpoint.name}: no valid {schema.__name__} after {max_repairs + 1} tries",
        last_text=text,
    )


_REJECTS_SCHEMA = re.compile(
    r"response[_ ]format|json[_ ]schema|structured[_ ]outputs?", re.IGNORECASE
)


def _rejects_response_format(exc: ProviderError) -> bool:
    """Whether ``exc`` is the endpoint refusing ``response_format`` itself, as opposed to a
    400 for some other fault of the request (which the fallback would only hide)."""
    # The provider's own words are on the status error it was raised from, unabridged.
    return exc.status == 400 and _REJECTS_SCHEMA.search(str(exc.__cause__ or exc)) is not None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> str:
    """The JSON object in ``text``: in a code fence, or from the first ``{`` to the last ``}``."""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        return text[start : end + 1]
    return text.strip()


def _with_schema_instruction(
    wire: list[dict[str, Any]], json_schema: dict[str, Any]
) -> list[dict[str, Any]]:
    instruction = (
        "Reply with a single JSON object, and nothing else, that validates against this "
        f"JSON Schema:\n{json.dumps(json_schema)}"
    )
    return [{"role": "system", "content": instruction}, *wire]
