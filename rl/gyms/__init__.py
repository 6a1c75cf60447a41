"""Verifiable-reward gyms, each a task source plus a verifier, registered by name.

Importing this package registers the built-in gyms; ``build_gym(name, options)`` makes one.
"""

from rl.gyms import code, instructions, judged, math, tool_use
from rl.gyms.base import GYMS, Budget, Gym, GymError, GymOptions, Sample, Task, build_gym, register

__all__ = [
    "GYMS",
    "Budget",
    "Gym",
    "GymError",
    "GymOptions",
    "Sample",
    "Task",
    "build_gym",
    "code",
    "instructions",
    "judged",
    "math",
    "register",
    "tool_use",
]
