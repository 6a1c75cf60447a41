"""Errors raised by the ``llm`` layer, named by where the failure happened."""

from __future__ import annotations


class LLMError(Exception):
    """Base class of every error this package raises."""


class ConfigError(LLMError):
    """An endpoint preset or setting is wrong: unknown preset, missing key, bad field."""


class ProviderError(LLMError):
    """The endpoint failed and retries did not help.

    The message names the endpoint, the model and the last status, on one line.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        model: str,
        status: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.model = model
        self.status = status
        self.attempts = attempts


class StructuredOutputError(LLMError):
    """The model's answer could not be turned into the requested pydantic model."""

    def __init__(self, message: str, *, last_text: str | None = None) -> None:
        super().__init__(message)
        self.last_text = last_text
