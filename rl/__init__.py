"""Verifiable-reward gyms, the self-critique rubric reward and GRPO on TRL. Not built yet;
see the gyms/GRPO and self-critique issues."""
