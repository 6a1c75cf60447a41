"""Rubrics in YAML, the built-in library, the trajectory judge and the pairwise critic.
Not built yet; see the rubrics issue."""
