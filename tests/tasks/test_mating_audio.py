"""Reading the span of a call: a start whose first sample is rounded up must not give an empty window."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from tasks.audio import read_span


def test_span_whose_first_sample_rounds_up_is_read_whole(tmp_path):
    path = tmp_path / "E10.wav"
    samples = (0.1 * np.random.default_rng(0).standard_normal((44_100 * 6, 2))).astype(np.float32)
    sf.write(path, samples, 44_100, subtype="FLOAT")
    start, end = 1.835, 4.588  # 1.835 * 44100 = 80923.5: round() gives 80924, one sample after the start
    recording = read_span(path, start, end)
    assert recording.samples.shape == (round((end - start) * 44_100), 2)
    assert np.array_equal(recording.samples, samples[80_924 : 80_924 + recording.samples.shape[0]])
