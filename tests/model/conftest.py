"""Shared set-up of the model-workflow tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def nan_loss_at(monkeypatch):
    """``nan_loss_at(k)``: the trainer's k-th loss evaluation (1-based, validation included) returns NaN."""
    import phi4si.model.train as tr

    def install(k: int):
        real, calls = tr._loss, []

        def loss(*a, **kw):
            calls.append(1)
            v = real(*a, **kw)
            return v * float("nan") if len(calls) == k else v

        monkeypatch.setattr(tr, "_loss", loss)

    return install
