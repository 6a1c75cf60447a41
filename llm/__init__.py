"""Talking to models: chat types, endpoint presets, the async client, tool-call parsing,
the embedded SmolLM2 endpoint (``llm.embedded``) and a scripted endpoint for tests
(``llm.testing``). This package imports nothing else of Summit's."""

from llm.client import ChatClient, UsageMeter
from llm.endpoints import Endpoint, EndpointPreset, get_endpoint, load_presets, local_endpoint
from llm.errors import ConfigError, LLMError, ProviderError, StructuredOutputError
from llm.toolcalls import parse_tool_calls
from llm.types import ChatResult, FunctionCall, Message, ToolCall, ToolCallParseError, Usage

__all__ = [
    "ChatClient",
    "ChatResult",
    "ConfigError",
    "Endpoint",
    "EndpointPreset",
    "FunctionCall",
    "LLMError",
    "Message",
    "ProviderError",
    "StructuredOutputError",
    "ToolCall",
    "ToolCallParseError",
    "Usage",
    "UsageMeter",
    "get_endpoint",
    "load_presets",
    "local_endpoint",
    "parse_tool_calls",
]
