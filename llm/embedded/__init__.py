"""The embedded default model (SmolLM2-135M-Instruct) and its loopback OpenAI-compatible server."""

from llm.embedded.server import EmbeddedServer, embedded_endpoint

__all__ = ["EmbeddedServer", "embedded_endpoint"]
