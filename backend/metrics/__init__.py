"""Metrics over stored sample pools (docs/ARCHITECTURE.md, "Metrics"). Every function is numpy or DuckDB over columns; each
docstring names its formula. Import each name from its module (`backend.metrics.coverage`, `.selection`, ...): the
package imports nothing itself, so a process that needs one metric module — the sampler encodes token confidence with
`backend.metrics.confidence` — does not load the others (scipy's statistics among them)."""
