"""The Ray-distributed search counts exactly as one worker does (local Ray instance)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from wormspace.checker.explore import check
from wormspace.model.examples.twophase import TwoPhase
from wormspace.spec.tcommit import TCommit

try:
    import ray
except ImportError:  # pragma: no cover - CI installs it with the test extras
    ray = None


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    if ray is None:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed, but CI must run the distributed tests")
        pytest.skip("ray not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.parametrize("workers", [2, 3])
def test_ray_counts_equal_one_worker(workers: int) -> None:
    one = check(TwoPhase(rm=4))
    many = check(TwoPhase(rm=4), workers=workers, ray_address="local")
    assert many.result == "ok"
    assert (many.distinct, many.generated, many.depth, many.levels) == (
        one.distinct, one.generated, one.depth, one.levels)
    assert {k: v[1] for k, v in many.coverage.items()} == {k: v[1] for k, v in one.coverage.items()}
    assert sum(v[0] for v in many.coverage.values()) == many.distinct - 1


def test_ray_violations_keep_shortest_traces() -> None:
    broken = TwoPhase(rm=3, bug="commit_without_all_prepared")
    one = check(broken, refinement=False)
    many = check(broken, refinement=False, workers=2, ray_address="local")
    assert many.result == "invariant" and len(many.trace) == len(one.trace)
    d = check(TCommit(rm=3), workers=2, ray_address="local")
    assert d.result == "deadlock" and len(d.trace) == 4
    assert check(TwoPhase(rm=3), symmetry=True, workers=2, ray_address="local").distinct == 80
