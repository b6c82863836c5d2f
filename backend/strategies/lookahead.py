"""Lookahead search (Snell et al.): beam search in which each candidate step is rolled out k more steps at
temperature 0 and scored at the END of the rollout, keeping only the candidate's step. Cost ≈ N × (k + 1)."""

from __future__ import annotations

from pydantic import Field

from backend.strategies.beam_search import BeamSearch, StepSearchOptions


class LookaheadOptions(StepSearchOptions):
    lookahead: int = Field(
        2, ge=0, le=16, description="k: greedy steps rolled out after each candidate before it is scored"
    )


class Lookahead(BeamSearch):
    """Beam search's loop: `step_search` rolls out `lookahead` steps when the configuration sets it."""
