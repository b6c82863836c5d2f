"""Fan-out planning without a cluster: the missing-Ray message, and how many replicas of what size a cluster gets."""

from __future__ import annotations

import sys

import pytest

from backend.engines import engine_options
from backend.errors import EngineError
from backend.execution import fanout


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(EngineError) as e:
        fanout.require_ray()
    assert str(e.value) == (
        "engine.replicas: fanning generation out needs Ray; install it with pip install 'ttc-lab[ray]' "
        "(or set engine.replicas: 1)"
    )


@pytest.mark.parametrize(
    "engine, cpus, gpus, expected",
    [
        ({"kind": "llamacpp", "threads": 1, "replicas": "auto"}, 2, 0, (2, {"num_cpus": 1})),
        ({"kind": "llamacpp", "threads": 4, "replicas": "auto"}, 16, 0, (4, {"num_cpus": 4})),
        ({"kind": "llamacpp", "replicas": 3}, 16, 0, (3, {"num_cpus": 1})),
        ({"kind": "vllm", "replicas": "auto"}, 64, 8, (8, {"num_gpus": 1, "num_cpus": 1})),
        ({"kind": "vllm", "tensor_parallel_size": 4, "replicas": "auto"}, 64, 8, (2, {"num_gpus": 4, "num_cpus": 1})),
    ],
)
def test_replicas_fit_the_cluster(monkeypatch, engine, cpus, gpus, expected):
    monkeypatch.setattr(fanout, "_cluster_cpus_gpus", lambda: (cpus, gpus))
    assert fanout.plan_replicas(engine_options(engine)) == expected


def test_replicas_are_checked_with_the_spec():
    from backend.errors import SpecError

    with pytest.raises(SpecError, match=r"^engine.replicas: Input should be greater than or equal to 1 \(got 0\)"):
        engine_options({"kind": "llamacpp", "replicas": 0})
