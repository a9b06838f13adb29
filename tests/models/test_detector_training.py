"""Unit tests of detector fine-tuning: IoU, matching, metrics, MTCNN's sample recipe and the crop geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_pytorch.models.utils.detect_face import bbreg, generateBoundingBox, imresample

from models.detector_training import (
    NEGATIVE,
    PART,
    POSITIVE,
    STAGE_SIZES,
    TrainingSettings,
    apply_regression,
    box_iou,
    crop_windows,
    detection_metrics,
    fine_tune_mtcnn,
    generated_samples,
    human_nets,
    image_tensor,
    jittered_windows,
    label_for_iou,
    match_detections,
    mirror_boxes,
    proposal_windows,
    reference_boxes,
    regression_targets,
    xywh_to_xyxy,
)

TRUTH = np.array([[100.0, 80.0, 160.0, 150.0]])


# ---- IoU, matching, metrics -------------------------------------------------------------------------


def test_iou_of_known_boxes() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [2, 2, 4, 4]])
    assert box_iou(a, b)[0] == pytest.approx([1.0, 50 / 150, 0.0, 4 / 100])


def test_iou_of_degenerate_boxes_is_zero() -> None:
    assert box_iou(np.array([[3, 3, 3, 3]]), np.array([[3, 3, 3, 3]]))[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), TRUTH).shape == (0, 1)


def test_xywh_to_xyxy() -> None:
    assert xywh_to_xyxy(np.array([[10, 20, 30, 40]])).tolist() == [[10, 20, 40, 60]]


def test_match_counts_hits_misses_and_false_alarms() -> None:
    truths = np.array([[0, 0, 10, 10], [100, 100, 120, 120]])
    preds = np.array([[0, 0, 10, 12], [50, 50, 60, 60]])
    result = match_detections(preds, truths, iou=0.5, scores=np.array([0.9, 0.8]))
    assert (result.tp, result.fp, result.fn) == (1, 1, 1)
    assert result.ious == pytest.approx((100 / 120,))


def test_match_is_greedy_by_score_and_one_to_one() -> None:
    truths = np.array([[0, 0, 10, 10]])
    weak_exact, strong_loose = [0, 0, 10, 10], [0, 0, 10, 15]
    result = match_detections(np.array([weak_exact, strong_loose]), truths, scores=np.array([0.5, 0.99]))
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)
    assert result.ious == pytest.approx((100 / 150,))  # the higher score took the face, the exact box is a duplicate


def test_match_respects_the_iou_threshold_inclusively() -> None:
    truths = np.array([[0, 0, 10, 10]])
    half = np.array([[0, 0, 10, 20]])  # IoU exactly 0.5
    assert match_detections(half, truths, iou=0.5).tp == 1
    assert match_detections(half, truths, iou=0.51).tp == 0


def test_match_without_boxes() -> None:
    assert match_detections(np.zeros((0, 4)), TRUTH).fn == 1
    assert match_detections(TRUTH, np.zeros((0, 4))).fp == 1


def test_metrics_pool_images() -> None:
    matches = [
        match_detections(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]])),
        match_detections(
            np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([[0, 0, 10, 20], [200, 200, 210, 210]])
        ),
        match_detections(np.array([[5, 5, 9, 9]]), np.zeros((0, 4))),
    ]
    metrics = detection_metrics(matches)
    assert (metrics.tp, metrics.fp, metrics.fn, metrics.n_images, metrics.n_faces) == (2, 2, 1, 3, 3)
    assert metrics.recall == pytest.approx(2 / 3)
    assert metrics.precision == pytest.approx(2 / 4)
    assert metrics.mean_iou == pytest.approx((1.0 + 0.5) / 2)


def test_metrics_of_nothing() -> None:
    metrics = detection_metrics([])
    assert (metrics.recall, metrics.precision, metrics.mean_iou) == (1.0, 1.0, 0.0)


# ---- labels and regression targets ------------------------------------------------------------------


def test_label_classes_follow_mtcnn() -> None:
    labels = label_for_iou(np.array([0.0, 0.29, 0.3, 0.39, 0.4, 0.64, 0.65, 1.0]))
    assert labels.tolist() == [NEGATIVE, NEGATIVE, -2, -2, PART, PART, POSITIVE, POSITIVE]


@pytest.mark.parametrize("stage", ["rnet", "onet"])
def test_targets_map_a_window_onto_its_box_through_bbreg(stage: str) -> None:
    windows = np.array([[90, 70, 170, 150], [110, 95, 150, 135]])
    refs = reference_boxes(windows, stage)
    targets = regression_targets(refs, np.repeat(TRUTH, 2, axis=0), stage)
    boxes = bbreg(torch.tensor(np.concatenate([refs, np.ones((2, 1))], axis=1)), torch.tensor(targets))
    assert boxes[:, :4].numpy() == pytest.approx(np.repeat(TRUTH, 2, axis=0))
    assert apply_regression(refs, targets, stage) == pytest.approx(np.repeat(TRUTH, 2, axis=0))


def test_rnet_reference_box_crops_the_window_through_pad() -> None:
    windows = np.array([[90, 70, 170, 150]])
    refs = torch.tensor(np.concatenate([reference_boxes(windows, "rnet"), [[0.9]]], axis=1), dtype=torch.float32)
    cropped, valid = proposal_windows(refs, 640, 480)
    assert cropped.tolist() == windows.tolist() and valid.all()


def test_pnet_reference_box_is_the_cell_generate_bounding_box_reports() -> None:
    scale, cell = 0.25, (3, 5)  # window of side 12 / 0.25 = 48 px at scaled pixels (2 * 5, 2 * 3)
    probs = torch.zeros(1, 8, 8)
    probs[0, cell[0], cell[1]] = 0.99
    targets = regression_targets(reference_boxes(np.array([[40, 24, 88, 72]]), "pnet"), TRUTH, "pnet")
    reg = torch.zeros(1, 4, 8, 8)
    reg[0, :, cell[0], cell[1]] = torch.tensor(targets[0], dtype=torch.float32)
    boxes, _ = generateBoundingBox(reg, probs, scale, 0.5)
    assert boxes[0, :4].tolist() == pytest.approx(reference_boxes(np.array([[40, 24, 88, 72]]), "pnet")[0].tolist())
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    moved = boxes[:, :4] + boxes[:, 5:9] * torch.stack([regw, regh, regw, regh], dim=1)  # detect_face's stage-1 step
    assert moved[0].tolist() == pytest.approx(TRUTH[0].tolist(), abs=1e-4)


def test_jittered_windows_of_a_face_cover_all_classes() -> None:
    windows = jittered_windows(np.random.default_rng(0), TRUTH, 400)
    labels = label_for_iou(box_iou(windows, TRUTH)[:, 0])
    assert {POSITIVE, PART} <= set(labels.tolist())
    assert np.abs((windows[:, 2] - windows[:, 0]) - (windows[:, 3] - windows[:, 1])).max() <= 1  # square up to rounding


# ---- crops ------------------------------------------------------------------------------------------


def scene(seed: int = 0, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A noisy RGB image with one bright square 'face' at TRUTH."""
    rgb = np.random.default_rng(seed).integers(0, 80, size=(*size, 3), dtype=np.uint8)
    x1, y1, x2, y2 = TRUTH[0].astype(int)
    rgb[y1:y2, x1:x2] = 220
    rgb[y1 + 20 : y1 + 30, x1 + 10 : x1 + 20] = 10
    return rgb


def test_crops_are_prepared_as_detect_face_prepares_them() -> None:
    rgb = scene()
    image = image_tensor(rgb)
    reference = torch.as_tensor(rgb.copy()).unsqueeze(0).permute(0, 3, 1, 2).float()
    expected = (imresample(reference[:, :, 70:150, 90:170], (24, 24)) - 127.5) * 0.0078125
    assert torch.equal(crop_windows(image, np.array([[90, 70, 170, 150]]), 24), expected)


def test_flipped_crop_equals_crop_of_the_mirrored_image() -> None:
    rgb = scene()
    window = np.array([[90, 70, 157, 137]])
    flipped = crop_windows(image_tensor(rgb), window, 48, np.array([True]))
    mirrored = crop_windows(image_tensor(rgb[:, ::-1]), mirror_boxes(window, rgb.shape[1]), 48)
    assert torch.allclose(flipped, mirrored, atol=1e-5)


@pytest.mark.parametrize("stage", ["pnet", "rnet", "onet"])
def test_generated_samples_have_the_right_classes_and_targets(stage: str) -> None:
    settings = TrainingSettings(crops_per_face=60, near_negatives_per_face=10, negatives_per_image=20, min_face_size=20)
    rgb = scene()
    samples = generated_samples(np.random.default_rng(1), image_tensor(rgb), TRUTH, stage, settings)
    counts = samples.counts()
    assert counts["positives"] > 0 and counts["parts"] > 0 and counts["negatives"] > 0
    assert samples.crops.shape[1:] == (3, STAGE_SIZES[stage], STAGE_SIZES[stage])
    assert torch.all(samples.targets[samples.labels == NEGATIVE] == 0)
    assert samples.targets[samples.labels == POSITIVE].abs().max() < 0.6  # positives lie close to the face


def test_flipped_targets_mirror_the_box() -> None:
    width, side = 320, 80
    window = np.array([[90, 70, 170, 150]])
    direct = regression_targets(reference_boxes(window, "onet"), TRUTH, "onet")[0]
    mirrored = regression_targets(
        reference_boxes(mirror_boxes(window, width), "onet"), mirror_boxes(TRUTH, width), "onet"
    )[0]
    # bbreg's boxes start one pixel right of the crop's first column, so a mirror shifts x by 1 / side
    assert mirrored.tolist() == pytest.approx([-direct[2] - 1 / side, direct[1], -direct[0] - 1 / side, direct[3]])
    refs = reference_boxes(mirror_boxes(window, width), "onet")
    assert apply_regression(refs, mirrored[None], "onet")[0].tolist() == pytest.approx(
        mirror_boxes(TRUTH, width)[0].tolist()
    )


# ---- training ---------------------------------------------------------------------------------------


TINY = TrainingSettings(
    epochs=(1, 1, 1),
    batch_size=32,
    crops_per_face=8,
    near_negatives_per_face=2,
    negatives_per_image=8,
    hard_negatives_per_image=8,
    min_face_size=20,
)


def test_fine_tuning_is_deterministic_and_keeps_the_landmark_head() -> None:
    images, truths = [scene(0), scene(1)], [TRUTH, TRUTH]
    first = fine_tune_mtcnn(images, truths, TINY, seed=5)
    second = fine_tune_mtcnn(images, truths, TINY, seed=5)
    human = human_nets()
    for stage in ("pnet", "rnet", "onet"):
        for key, value in first.states[stage].items():
            assert torch.equal(value, second.states[stage][key]), f"{stage}.{key} differs between equal runs"
    assert torch.equal(first.states["onet"]["dense6_3.weight"], human["onet"].state_dict()["dense6_3.weight"])
    assert not torch.equal(first.states["onet"]["dense6_1.weight"], human["onet"].state_dict()["dense6_1.weight"])
    assert first.report["pnet"]["positives"] > 0 and len(first.report["onet"]["losses"]) == 1


def test_fine_tuning_needs_a_face() -> None:
    with pytest.raises(ValueError, match="no annotated face"):
        fine_tune_mtcnn([scene()], [np.zeros((0, 4))], TINY, seed=0)
