"""Bounded value types for what the generator model writes (tasks, blueprints).

Every string, list and mapping the generator decodes under is bounded (but mapping keys:
llguidance does not implement ``propertyNames``), so constrained decoding closes it: a
small model otherwise keeps writing one value until its token budget runs out.
``tests/synth/test_schemas.py`` walks every such schema for an unbounded value.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

Short = Annotated[str, StringConstraints(max_length=160)]
"""A fact, a criterion or a state value."""
Name = Annotated[str, StringConstraints(max_length=64)]
Scalar = Short | int | float | bool | None
StateRecord = Annotated[dict[str, Scalar], Field(max_length=8)]
StateValue = Scalar | StateRecord | Annotated[list[Scalar | StateRecord], Field(max_length=8)]
"""A value of a generated state or of a call's arguments: a scalar, a flat record, or a
short list of them (records keyed by type); deeper nesting is the tool simulator's to add."""
