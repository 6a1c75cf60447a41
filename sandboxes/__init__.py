"""Environments an agent acts in, behind one interface (``base.Environment``).

Built: executable Python tool sets (``executable``, ``toolsets``: files, bank, calendar).
Not built yet (see the sandboxes issue): the LLM tool simulator, MCP environments, the
Docker code sandbox."""
