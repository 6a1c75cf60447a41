"""The tool repository: ToolSpec, importers (MCP, OpenAI tools JSON, function docs),
hierarchical domain evolution and dedup. Not built yet; see the tool-repository issue."""
