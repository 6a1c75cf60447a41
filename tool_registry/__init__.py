"""The tool repository: ToolSpec, importers (OpenAI tools JSON, function-doc collections,
MCP servers), persistence, query and sampling. Imports only ``llm``.

Not built yet (see the tool-repository issue): near-duplicate detection, hierarchical
domain evolution, its benchmark."""

from tool_registry.repository import AddResult, ToolRepository
from tool_registry.spec import Provenance, ToolSpec

__all__ = ["AddResult", "Provenance", "ToolRepository", "ToolSpec"]
