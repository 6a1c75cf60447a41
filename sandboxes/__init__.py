"""Environments an agent acts in, behind one interface (``base.Environment``).

Built: executable Python tool sets (``executable``, ``toolsets``: files, bank, calendar),
the LLM tool simulator (``simulated``) and real MCP servers (``mcp_env``). Not built yet
(see the sandboxes issue): the Docker code sandbox and its benchmark."""
