"""MTCNN's cascade over summed-area tables: exact area resampling and facenet-pytorch's detections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import detect_face
from PIL import Image
from torch import nn
from torch.nn.functional import interpolate

from models import mtcnn_cascade
from models.faces import DetectorSettings, build_mtcnn, upright_rgb
from models.mtcnn_cascade import PairMaxPool, area_crops, area_level, cascade, summed_area_table, table_dtype
from tests.conftest import realfile


@pytest.fixture(scope="module")
def frame() -> torch.Tensor:
    """One random (1, 37, 53, 3) uint8 frame with odd sides, so no bin is regular."""
    return torch.randint(0, 256, (1, 37, 53, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def reference_area(frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """torch's own area resampling of a (B, H, W, 3) frame mapped to MTCNN's input range, as facenet-pytorch does
    both."""
    return (interpolate(frame.permute(0, 3, 1, 2).float(), size=size, mode="area") - 127.5) * 0.0078125


@pytest.mark.parametrize("size", [(37, 53), (26, 38), (12, 12), (5, 7), (60, 80)])
def test_area_level_equals_torch_area_interpolation(frame, size):
    ours = area_level(summed_area_table(frame), size)
    assert ours.shape == (1, 3, *size)
    torch.testing.assert_close(ours, reference_area(frame, size), rtol=0, atol=1e-6)


def test_area_level_in_bands_of_rows_equals_torch(frame, monkeypatch):
    monkeypatch.setattr(mtcnn_cascade, "CPU_BAND_BYTES", 2 * 54 * 3 * 4)  # two table rows per band
    torch.testing.assert_close(
        area_level(summed_area_table(frame), (25, 30)), reference_area(frame, (25, 30)), rtol=0, atol=1e-6
    )


def test_area_level_is_channels_last_for_p_net(frame):
    assert area_level(summed_area_table(frame), (20, 30)).is_contiguous(memory_format=torch.channels_last)


def test_area_crops_equal_one_interpolation_per_box(frame):
    frames = torch.cat([frame, frame.flip(1)])
    boxes = [
        (0, 0, 0, 37, 53),
        (1, 3, 7, 30, 40),
        (0, 10, 20, 15, 26),
        (1, 36, 52, 37, 53),
    ]  # whole, inner, 5x6, 1 pixel
    inds, top, left, bottom, right = (torch.tensor(column) for column in zip(*boxes))
    ours = area_crops(summed_area_table(frames), inds, (top, bottom), (left, right), 24)
    for crop, (i, y0, x0, y1, x1) in zip(ours, boxes):
        expected = reference_area(frames[i : i + 1, y0:y1, x0:x1], (24, 24))[0]
        torch.testing.assert_close(crop, expected, rtol=0, atol=1e-6)


def test_sums_switch_to_int64_before_int32_would_overflow():
    assert table_dtype(3000, 4000) == torch.int32  # 12 MP: offset pixels sum to at most 128 each
    assert table_dtype(4000, 6000) == torch.int64


def test_sums_over_a_white_9_megapixel_frame_stay_exact_in_int32():
    white = torch.full((1, 3000, 3000, 3), 255, dtype=torch.uint8)  # unoffset, its sums would pass 2**31
    table = summed_area_table(white)
    assert table.dtype == torch.int32
    assert torch.equal(area_level(table, (12, 12)), torch.full((1, 3, 12, 12), (255.0 - 127.5) * 0.0078125))
    corner = area_crops(
        table,
        torch.tensor([0]),
        (torch.tensor([2900]), torch.tensor([3000])),
        (torch.tensor([2900]), torch.tensor([3000])),
        24,
    )
    assert torch.equal(corner, torch.full((1, 3, 24, 24), (255.0 - 127.5) * 0.0078125))


def test_int64_tables_resample_alike(frame, monkeypatch):
    monkeypatch.setattr(mtcnn_cascade, "table_dtype", lambda height, width: torch.int64)
    table = summed_area_table(frame)
    assert table.dtype == torch.int64
    torch.testing.assert_close(area_level(table, (26, 38)), reference_area(frame, (26, 38)), rtol=0, atol=1e-6)


def test_a_frame_without_faces_gives_empty_arrays():
    mtcnn = MTCNN(keep_all=True)
    blank = torch.full((2, 120, 160, 3), 128, dtype=torch.uint8)
    for boxes, points in cascade(blank, (mtcnn.pnet, mtcnn.rnet, mtcnn.onet), 20, 0.709, (0.6, 0.7, 0.7)):
        assert boxes.shape == (0, 5) and points.shape == (0, 5, 2)


def test_a_frame_smaller_than_the_smallest_face_gives_empty_arrays():
    mtcnn = MTCNN(keep_all=True)
    tiny = torch.full((1, 15, 18, 3), 100, dtype=torch.uint8)  # facenet-pytorch's detect_face raises on it
    [(boxes, points)] = cascade(tiny, (mtcnn.pnet, mtcnn.rnet, mtcnn.onet), 20, 0.709, (0.6, 0.7, 0.7))
    assert boxes.shape == (0, 5) and points.shape == (0, 5, 2)


def test_cascade_equals_facenet_pytorch_detect_face(realdata):
    with Image.open(realfile(realdata, "facenet-pytorch/multiface.jpg")) as raw:
        image = np.asarray(upright_rgb(raw))
    mtcnn = MTCNN(keep_all=True).eval()
    nets = (mtcnn.pnet, mtcnn.rnet, mtcnn.onet)
    with torch.no_grad():
        expected_boxes, expected_points = detect_face(image[None], 20, *nets, [0.6, 0.7, 0.7], 0.709, "cpu")
    boxes, points = cascade(torch.from_numpy(image.copy())[None], nets, 20, 0.709, (0.6, 0.7, 0.7))[0]
    expected_boxes = np.asarray(expected_boxes[0], dtype=np.float64)
    assert len(boxes) == len(expected_boxes) == 6
    order = [int(np.abs(expected_boxes[:, :4] - box[:4]).sum(axis=1).argmin()) for box in boxes]
    np.testing.assert_allclose(boxes, expected_boxes[order], atol=1e-2)
    np.testing.assert_allclose(points, np.asarray(expected_points[0], dtype=np.float64)[order], atol=1e-2)


@pytest.mark.parametrize("shape", [(1, 10, 646, 1150), (2, 10, 37, 53), (3, 4, 1, 1), (1, 10, 2, 5), (1, 3, 7, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pair_max_pool_equals_ceil_mode_max_pool(shape, dtype):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    reference = nn.MaxPool2d(2, 2, ceil_mode=True)
    for layout in (torch.contiguous_format, torch.channels_last):
        laid_out = x.contiguous(memory_format=layout)
        pooled = PairMaxPool()(laid_out)
        assert torch.equal(pooled, reference(laid_out))
        assert pooled.is_contiguous(memory_format=layout)  # P-Net's next convolution reads channels_last


def test_built_p_net_pools_pairs_and_keeps_its_weights():
    mtcnn = build_mtcnn(DetectorSettings(), None, torch.device("cpu"))
    assert isinstance(mtcnn.pnet.pool1, PairMaxPool)
    assert set(mtcnn.pnet.state_dict()) == set(MTCNN(keep_all=True).pnet.state_dict())
