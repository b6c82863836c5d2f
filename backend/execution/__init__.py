"""The write path, top-down: a queued spec (queue.py) is claimed by a worker process (workers.py), which executes
the run (execute.py): sampling draws each model's pool (sampling.py) — round by round under a total budget for an
adaptive spec (allocation.py) — then every verifier scores it and every search runs (analysis.py, scoring.py), on
one engine or fanned out to engine replicas (fanout.py). Each module imports only those after it in this list and
the layers below (docs/ARCHITECTURE.md, "The data path")."""
