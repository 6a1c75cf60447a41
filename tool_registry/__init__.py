"""The tool repository: ToolSpec, importers (MCP servers, OpenAI tools JSON, function-doc
collections), exact and near-duplicate detection, hierarchical domain evolution,
persistence, query and sampling; ``python -m tool_registry``. Imports only ``llm``."""

from tool_registry.repository import AddResult, ToolRepository
from tool_registry.spec import Provenance, ToolSpec

__all__ = ["AddResult", "Provenance", "ToolRepository", "ToolSpec"]
