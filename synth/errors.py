"""The error that ends a synthesis job.

:class:`TaskError` is raised by any stage, the pipeline or a worker when the run cannot
produce what it needs (no tools, a dead MCP server, an endpoint that does not answer, an
output directory bound to another config); the CLI prints it as one line and exits 1.
"""

from __future__ import annotations


class TaskError(Exception):
    """The run cannot go on; the message says what to fix."""
