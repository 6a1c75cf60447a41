"""The self-critique rubric reward and closed-loop critic refinement.

A pairwise critic (an endpoint such as K2, or a local trainable model) ranks each GRPO
group against core, prescriptive and task rubrics (:class:`CritiqueReward`); where a gym
also verified the completions, the critic's agreement with the verifier is logged and the
pairs it got wrong refine it — in context for endpoint critics
(:class:`~rl.critique.critics.ExemplarBank`), by a TRL DPO round for a local one
(:class:`~rl.critique.local.LocalCritic`). See ``docs/critique.md``.
"""

from rl.critique.agreement import AgreementLog, VerifiedPair, group_agreement, pair_agreement
from rl.critique.critics import CriticBackend, EndpointCritic, ExemplarBank
from rl.critique.reward import CritiqueReward

__all__ = [
    "AgreementLog",
    "CriticBackend",
    "CritiqueReward",
    "EndpointCritic",
    "ExemplarBank",
    "VerifiedPair",
    "group_agreement",
    "pair_agreement",
]
