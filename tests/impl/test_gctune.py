"""The collector setting for long-running processes (impl/net/gctune.py)."""

from __future__ import annotations

import gc

import pytest
from wormspace.impl.net import gctune


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_raises_the_first_threshold_and_freezes_what_exists(restore_gc, monkeypatch):
    monkeypatch.delenv("WORMSPACE_GC", raising=False)
    gc.set_threshold(700, 10, 10)
    kept = [[i] for i in range(1000)]  # long-lived containers, tracked
    assert gctune.tune() is True
    assert gc.get_threshold() == (gctune.GEN0, 10, 10)
    assert gc.get_freeze_count() >= len(kept)


def test_wormspace_gc_default_leaves_the_collector_alone(restore_gc, monkeypatch):
    monkeypatch.setenv("WORMSPACE_GC", "default")
    gc.set_threshold(700, 10, 10)
    frozen = gc.get_freeze_count()
    assert gctune.tune() is False
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == frozen
