"""Environments an agent acts in, behind one interface (``base.Environment``).

Built: executable Python tool sets (``executable``, ``toolsets``: files, bank, calendar),
the LLM tool simulator (``simulated``), real MCP servers (``mcp_env``) and the hardened
Docker code sandbox (``docker``, ``python -m sandboxes build-image``). Not built yet (see
the sandboxes issue): the HumanEval check and ``bench/sandbox.py``."""
