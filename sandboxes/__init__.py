"""Environments an agent acts in, behind one interface (``base.Environment``): executable
Python tool sets (``executable``, ``toolsets``), the LLM tool simulator (``simulated``), real
MCP servers (``mcp_env``) and the hardened Docker code sandbox (``docker``, ``code``,
``python -m sandboxes build-image``)."""
