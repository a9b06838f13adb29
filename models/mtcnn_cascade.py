"""MTCNN's three-stage cascade over facenet-pytorch's P-, R- and O-Nets, resampling from one summed-area table per
frame (pure, no disk).

facenet-pytorch's `detect_face` resizes the whole frame once per pyramid scale and every candidate box once per
stage with `interpolate(mode="area")`: on a CPU that is the larger half of detection. Area resampling is the mean
of each output cell's pixel rectangle (the same integer bins as `adaptive_avg_pool2d`), so every pyramid level
and every 24 or 48 pixel candidate crop is a handful of lookups in one integer summed-area table, exact and in one
vectorised call per stage, divided straight into MTCNN's input range. P-Net runs channels_last. Thresholds, NMS
and box regression are facenet-pytorch's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import (
    batched_nms_numpy,
    bbreg,
    fixed_batch_process,
    generateBoundingBox,
    pad,
    rerec,
)
from torch import nn
from torchvision.ops.boxes import batched_nms

PIXEL_CENTRE = 127.5
PIXEL_SCALE = 0.0078125
PIXEL_OFFSET = 128  # subtracted before summing: |sums| <= 128 per pixel keeps frames up to 16.7 MP in int32
NORMALISED_SHIFT = (PIXEL_OFFSET - PIXEL_CENTRE) * PIXEL_SCALE  # input = sum / (count / PIXEL_SCALE) + this
CPU_BAND_BYTES = 4 * 2**20  # rows of the table looked up at once per pyramid level on the CPU
PNET_CELL = 12
RNET_SIZE = 24
ONET_SIZE = 48


@dataclass(frozen=True)
class Candidates:
    """Boxes (N, 5: x1, y1, x2, y2, score) with the index of the frame each lies in."""

    boxes: torch.Tensor
    image_inds: torch.Tensor


def table_dtype(height: int, width: int) -> torch.dtype:
    """int32 (twice as fast as int64, half the memory) while a whole frame's offset channel sum fits in it, else
    int64."""
    return torch.int32 if height * width * PIXEL_OFFSET <= torch.iinfo(torch.int32).max else torch.int64


def summed_area_table(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 frames as (B, H + 1, W + 1, 3) integer sums of (pixel - PIXEL_OFFSET) over every top-left
    rectangle, summed in place inside the zero border (1080p, 2 cores: 5 ms, against 11 ms summing and then padding)."""
    batch, height, width, channels = frames.shape
    table = torch.empty(
        (batch, height + 1, width + 1, channels), dtype=table_dtype(height, width), device=frames.device
    )
    table[:, 0] = 0
    table[:, :, 0] = 0
    inside = table[:, 1:, 1:]
    inside.copy_(frames).sub_(PIXEL_OFFSET).cumsum_(2).cumsum_(1)
    return table


def bin_edges(start: torch.Tensor, length: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last source index of each of `bins` output cells over [start, start + length), the
    integer bins of adaptive average pooling: floor(i * length / bins) and ceil((i + 1) * length / bins)."""
    cells = torch.arange(bins, device=length.device)
    low = start[:, None] + (cells * length[:, None]) // bins
    high = start[:, None] + ((cells + 1) * length[:, None] + bins - 1) // bins
    return low, high


def axis_bins(length: int, bins: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """bin_edges over a whole axis [0, length), as two (bins,) index tensors."""
    start = torch.zeros(1, dtype=torch.int64, device=device)
    low, high = bin_edges(start, start + length, bins)
    return low[0], high[0]


def area_level(table: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Every frame resized to size (h, w) by area averaging, in MTCNN's input range ((pixel - 127.5) / 128), as
    (B, 3, h, w) float32 in channels_last layout; on the CPU in bands of output rows whose lookups stay in cache (2
    cores, whole pyramid: 12 MP 450 -> 116 ms, 1080p 20 -> 17 ms), each band's sums divided straight into the level
    (resampling and then normalising took three passes more: 16 720p frames 124 -> 108 ms)."""
    row_low, row_high = axis_bins(table.shape[1] - 1, size[0], table.device)
    col_low, col_high = axis_bins(table.shape[2] - 1, size[1], table.device)
    divisors = ((row_high - row_low)[:, None] * (col_high - col_low)[None, :])[None, :, :, None] / PIXEL_SCALE
    level = torch.empty((table.shape[0], *size, 3), dtype=torch.float32, device=table.device)
    row_bytes = table.shape[0] * table.shape[2] * table.shape[3] * table.element_size()
    step = size[0] if table.is_cuda else max(1, CPU_BAND_BYTES // row_bytes)
    for top in range(0, size[0], step):
        rows = slice(top, top + step)
        band = table.index_select(1, row_high[rows]) - table.index_select(1, row_low[rows])
        torch.div(band.index_select(2, col_high) - band.index_select(2, col_low), divisors[:, rows], out=level[:, rows])
    return level.add_(NORMALISED_SHIFT).permute(0, 3, 1, 2)


def area_crops(
    table: torch.Tensor,
    image_inds: torch.Tensor,
    rows: tuple[torch.Tensor, torch.Tensor],
    cols: tuple[torch.Tensor, torch.Tensor],
    size: int,
) -> torch.Tensor:
    """Rectangles [row0, row1) x [col0, col1) of their frames resized to size x size by area averaging, in MTCNN's
    input range: (N, 3, size, size). Each corner is one row gather from the table seen as (pixels, 3) by flat index
    (2 cores, 3,000 24-pixel crops: 42 -> 20 ms against indexing the 4-d table with four index tensors)."""
    row_low, row_high = bin_edges(rows[0], rows[1] - rows[0], size)
    col_low, col_high = bin_edges(cols[0], cols[1] - cols[0], size)
    height, width = table.shape[1], table.shape[2]
    first_row = image_inds[:, None] * height
    r0, r1 = ((first_row + row_low) * width)[:, :, None], ((first_row + row_high) * width)[:, :, None]
    c0, c1 = col_low[:, None, :], col_high[:, None, :]
    pixels = table.view(-1, table.shape[3])

    def corner(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        """Sums at one corner of every output cell: (N * size * size, 3)."""
        return pixels.index_select(0, (row + col).view(-1))

    sums = (corner(r1, c1) - corner(r0, c1) - corner(r1, c0) + corner(r0, c0)).view(
        len(image_inds), size, size, table.shape[3]
    )
    divisors = ((row_high - row_low)[:, :, None] * (col_high - col_low)[:, None, :])[..., None] / PIXEL_SCALE
    return (sums / divisors + NORMALISED_SHIFT).permute(0, 3, 1, 2)


class PairMaxPool(nn.Module):
    """P-Net's 2 x 2, stride 2, ceil-mode max pooling as maxima of strided views written into the pooled tensor: equal
    to nn.MaxPool2d(2, 2, ceil_mode=True), and 3-6x faster on P-Net's 10-channel channels_last levels on a CPU (1080p
    first level, 2 cores: 0.8 ms even, 1.3 ms odd, against 4.5-5.2 ms; appending an odd side's last row with
    torch.cat copied the whole pooled tensor: 16 odd 720p first levels 17 -> 10 ms)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool (N, C, H, W) to (N, C, ceil(H / 2), ceil(W / 2)): pairs of rows, then pairs of columns; an odd last
        row or column is its own maximum."""
        height, width = x.shape[-2:]
        rows = pooled_like(x, (height + 1) // 2, width)
        torch.maximum(x[..., 0 : height - 1 : 2, :], x[..., 1::2, :], out=rows[..., : height // 2, :])
        if height % 2:
            rows[..., -1:, :] = x[..., -1:, :]
        pooled = pooled_like(x, rows.shape[-2], (width + 1) // 2)
        torch.maximum(rows[..., 0 : width - 1 : 2], rows[..., 1::2], out=pooled[..., : width // 2])
        if width % 2:
            pooled[..., -1:] = rows[..., -1:]
        return pooled


def pooled_like(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """An empty (N, C, height, width) tensor of x's dtype and device, in x's layout (channels_last or contiguous)."""
    layout = (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )
    return torch.empty((*x.shape[:-2], height, width), dtype=x.dtype, device=x.device, memory_format=layout)


def pyramid_scales(height: int, width: int, min_face_size: int, factor: float) -> list[float]:
    """The scales at which P-Net's 12-pixel window covers faces from min_face_size up to the frame's shorter side."""
    scale = PNET_CELL / min_face_size
    shorter = min(height, width) * scale
    scales = []
    while shorter >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        shorter *= factor
    return scales


def proposals(table: torch.Tensor, pnet: nn.Module, min_face_size: int, factor: float, threshold: float) -> Candidates:
    """Stage 1: P-Net over the pyramid, NMS within each scale and then within each frame, boxes regressed and
    squared."""
    height, width = table.shape[1] - 1, table.shape[2] - 1
    boxes, image_inds = [], []
    for scale in pyramid_scales(height, width, min_face_size, factor):
        level = area_level(table, (int(height * scale + 1), int(width * scale + 1)))
        reg, probs = pnet(level)
        found, inds = generateBoundingBox(reg, probs[:, 1], scale, threshold)
        pick = batched_nms(found[:, :4], found[:, 4], inds, 0.5)
        boxes.append(found[pick])
        image_inds.append(inds[pick])
    if not boxes:  # the frame's shorter side is below min_face_size: no face of that size fits (facenet-pytorch raised)
        return Candidates(
            torch.zeros((0, 5), device=table.device), torch.zeros(0, dtype=torch.int64, device=table.device)
        )
    found, inds = torch.cat(boxes), torch.cat(image_inds)
    pick = batched_nms(found[:, :4], found[:, 4], inds, 0.7)
    found, inds = found[pick], inds[pick]
    size = (found[:, 2:4] - found[:, 0:2]).repeat(1, 2)
    regressed = torch.cat([found[:, :4] + found[:, 5:9] * size, found[:, 4:5]], dim=1)
    return Candidates(rerec(regressed), inds)


def candidate_crops(table: torch.Tensor, candidates: Candidates, size: int) -> tuple[Candidates, torch.Tensor]:
    """The candidates that overlap their frame, and their size x size crops in MTCNN's input range (clipped to the
    frame)."""
    height, width = table.shape[1] - 1, table.shape[2] - 1
    y, ey, x, ex = (
        torch.as_tensor(v, dtype=torch.int64, device=table.device) for v in pad(candidates.boxes, width, height)
    )
    inside = (ey > y - 1) & (ex > x - 1)
    kept = Candidates(candidates.boxes[inside], candidates.image_inds[inside])
    crops = area_crops(table, kept.image_inds, (y[inside] - 1, ey[inside]), (x[inside] - 1, ex[inside]), size)
    return kept, crops


def refine(table: torch.Tensor, candidates: Candidates, rnet: nn.Module, threshold: float) -> Candidates:
    """Stage 2: R-Net rescores 24-pixel crops, NMS within each frame, boxes regressed and squared."""
    kept, crops = candidate_crops(table, candidates, RNET_SIZE)
    if len(crops) == 0:
        return kept
    regression, scores = fixed_batch_process(crops, rnet)
    score = scores[:, 1]
    passed = score > threshold
    boxes = torch.cat((kept.boxes[passed, :4], score[passed, None]), dim=1)
    inds, shift = kept.image_inds[passed], regression[passed]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    return Candidates(rerec(bbreg(boxes[pick], shift[pick])), inds[pick])


def finalise(
    table: torch.Tensor, candidates: Candidates, onet: nn.Module, threshold: float
) -> tuple[Candidates, torch.Tensor]:
    """Stage 3: O-Net rescores 48-pixel crops and places five landmarks, boxes regressed, NMS ("Min") within each
    frame."""
    kept, crops = candidate_crops(table, candidates, ONET_SIZE)
    if len(crops) == 0:
        return kept, torch.zeros(0, 5, 2, device=table.device)
    regression, marks, scores = fixed_batch_process(crops, onet)
    score = scores[:, 1]
    passed = score > threshold
    boxes = torch.cat((kept.boxes[passed, :4], score[passed, None]), dim=1)
    inds, marks = kept.image_inds[passed], marks[passed]
    side_w, side_h = (boxes[:, 2] - boxes[:, 0] + 1)[:, None], (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    points = torch.stack((side_w * marks[:, :5] + boxes[:, 0:1] - 1, side_h * marks[:, 5:] + boxes[:, 1:2] - 1), dim=2)
    boxes = bbreg(boxes, regression[passed])
    pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], inds, 0.7, "Min")
    return Candidates(boxes[pick], inds[pick]), points[pick]


def cascade(
    frames: torch.Tensor,
    nets: tuple[nn.Module, nn.Module, nn.Module],
    min_face_size: int,
    factor: float,
    thresholds: tuple[float, float, float],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Detect faces in (B, H, W, 3) uint8 frames on the nets' device: per frame an (n, 5) array of boxes with scores
    and an (n, 5, 2) array of landmarks, as facenet-pytorch's detect_face returns them."""
    pnet, rnet, onet = nets
    with torch.inference_mode():
        table = summed_area_table(frames)
        found = proposals(table, pnet, min_face_size, factor, thresholds[0])
        found = refine(table, found, rnet, thresholds[1])
        found, points = finalise(table, found, onet, thresholds[2])
    boxes, points, inds = found.boxes.cpu().numpy(), points.cpu().numpy(), found.image_inds.cpu().numpy()
    return [(boxes[inds == frame], points[inds == frame]) for frame in range(len(frames))]
