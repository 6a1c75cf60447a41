"""The training set: every gym's tasks, mixed by weight into one TRL prompt dataset.

Rows share one schema (``prompt`` messages, ``gym``, ``task`` JSON, ``environment``) so the
gyms concatenate; :func:`mixture` draws from them with probabilities proportional to the
configured weights (``datasets.interleave_datasets``, seeded), cycling a gym's tasks when
it runs out before the mixture is full.

Not here: the PTX dataset (``rl.ptx``), or held-out tasks (``rl.evaluate``).
"""

from __future__ import annotations

from typing import Any

from rl.gyms.base import Gym, GymError, Split


def gym_dataset(gym: Gym, split: Split) -> Any:
    from datasets import Dataset

    rows = gym.rows(split)
    if not rows:
        raise GymError(f"gym {gym.name}: no {split} tasks (check its options)")
    return Dataset.from_list(rows)


def mixture(gyms: list[Gym], weights: list[float], size: int | None, seed: int) -> Any:
    """One shuffled dataset of ``size`` rows (default: all tasks) drawn by ``weights``."""
    from datasets import concatenate_datasets, interleave_datasets

    parts = [gym_dataset(g, "train") for g in gyms]
    if len(parts) == 1:
        data = parts[0].shuffle(seed=seed)
        return data.select(range(min(size, len(data)))) if size else data
    total = size or sum(len(p) for p in parts)
    probabilities = [w / sum(weights) for w in weights]
    mixed = interleave_datasets(
        parts, probabilities=probabilities, seed=seed, stopping_strategy="all_exhausted"
    )
    while len(mixed) < total:
        mixed = concatenate_datasets([mixed, mixed])
    return mixed.select(range(total))
