"""Random streams of the synthetic drops: every draw comes from a numpy Generator derived from (seed, stream,
index), so each rendered item is a pure function of the seed and items can be rendered in any order."""

from __future__ import annotations

import numpy as np

STREAM_PLAN, STREAM_KEEPER, STREAM_SCENE, STREAM_CALLS, STREAM_AUDIO, STREAM_MARKINGS = range(6)
STREAM_WILD, STREAM_HABITS, STREAM_NIGHT, STREAM_NIGHT_SCENE = range(6, 10)


def item_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    """Independent generator for one item, a pure function of (seed, stream, index)."""
    return np.random.default_rng([seed, stream, *index])
