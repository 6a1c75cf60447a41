"""Prompt templates of the judge and the critic, rendered in one place (:mod:`rubrics.render`)."""
