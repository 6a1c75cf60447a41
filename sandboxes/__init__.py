"""Environments an agent acts in, behind one interface (LLM tool simulator, executable
Python tools, MCP servers, Docker code sandbox). Not built yet; see the sandboxes issue."""
