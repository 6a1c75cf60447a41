"""The agentic data synthesis on Ray: tools → agents → tasks with rubrics → multi-turn
trajectories → judge → dataset (``python -m synth run CONFIG``; docs/synth.md).

:class:`TaskError` is the error that ends a job; the stages live in their own modules."""

from synth.errors import TaskError

__all__ = ["TaskError"]
