"""Environments an agent acts in, behind one interface (``base.Environment``).

Built: executable Python tool sets (``executable``, ``toolsets``: files, bank, calendar)
and the LLM tool simulator (``simulated``). Not built yet (see the sandboxes issue): MCP
environments and the Docker code sandbox."""
