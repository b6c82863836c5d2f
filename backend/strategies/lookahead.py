"""Lookahead search (Snell et al.): beam search in which each candidate step is rolled out k more steps at
temperature 0 and scored at the END of the rollout, keeping only the candidate's step. Cost ≈ N × (k + 1)."""

from __future__ import annotations

from backend.strategies.beam_search import BeamSearch
from backend.strategies.params import Param

LOOKAHEAD = Param("lookahead", 2, "k: greedy steps rolled out after each candidate before it is scored", int, 0, 16)


class Lookahead(BeamSearch):
    name = "lookahead"
    help = "Beam search that scores each candidate by the verifier's score at the end of a k-step greedy rollout."
    params: tuple[Param, ...] = BeamSearch.params + (LOOKAHEAD,)
