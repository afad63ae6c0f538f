"""phi4si.seeds: named random streams are SeedSequence children of the run's seed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from phi4si.errors import ParameterError
from phi4si.seeds import STREAMS, numpy_rng, stream_seed, torch_generator


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**63), name=st.sampled_from(sorted(STREAMS)), i=st.integers(0, 5), j=st.integers(0, 5))
def test_stream_is_the_spawned_child(seed, name, i, j):
    """stream_seed(seed, name, i, j) is the state of SeedSequence(seed).spawn(..)[key].spawn(..)[i].spawn(..)[j]."""
    child = np.random.SeedSequence(seed).spawn(STREAMS[name] + 1)[STREAMS[name]]
    child = child.spawn(i + 1)[i].spawn(j + 1)[j]
    assert stream_seed(seed, name, i, j) == int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))


def test_streams_do_not_collide_where_offsets_did():
    # the old pilot rounds used seed + 7919 (r + 1): seed 7919, round 0 equalled seed 0, round 1
    assert stream_seed(7919, "pilot", 0) != stream_seed(0, "pilot", 1)
    seeds = {stream_seed(s, n, r) for s in range(20) for n in STREAMS for r in range(10)}
    assert len(seeds) == 20 * len(STREAMS) * 10
    assert all(0 <= s < 2**63 for s in seeds)


def test_generators_reproduce_their_stream():
    a, b = numpy_rng(4, "denoise").random(5), numpy_rng(4, "denoise").random(5)
    assert np.array_equal(a, b) and not np.array_equal(a, numpy_rng(5, "denoise").random(5))
    import torch

    x, y = torch.randn(4, generator=torch_generator(1, "pilot", 2)), torch.randn(4, generator=torch_generator(1, "pilot", 2))
    assert torch.equal(x, y)


@pytest.mark.parametrize("seed,name", [(-1, "pilot"), (1.5, "pilot"), (True, "pilot"), (0, "nope")])
def test_refusals(seed, name):
    with pytest.raises(ParameterError):
        stream_seed(seed, name)
