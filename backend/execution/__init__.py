"""The write path: a queued spec (queue.py) is claimed by a worker process (workers.py), which executes the run
(execute.py): sampling draws each model's pool (sampling.py) — round by round under a total budget for an adaptive
spec (allocation.py) — then every verifier scores it and every search runs (analysis.py, scoring.py), on one engine
or fanned out to engine replicas (fanout.py). Imports point one way, in the order workers, queue, execute, fanout,
allocation, analysis, scoring, sampling: each module imports only modules after it (tests/unit/test_layers.py,
`WRITE_PATH`; docs/ARCHITECTURE.md, "The data path")."""
