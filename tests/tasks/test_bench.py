"""`breedwatch bench` on a tiny drop: the JSON's shape and the statements that results equal the naive way's (never
times)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from models.bench.checks import gender_tolerance
from models.execution import candidate_precisions
from schemas.bench import BenchOptions
from schemas.home import HomeLayout
from tasks.bench.run import warmup_options
from tasks.bench.scratch import write_drop
from tasks.execution import read_hardware
from tests.conftest import realfile

TINY = ["--gender-size", "32", "--cganet-filters", "4"]
RATES = ("pipeline_per_s", "naive_per_s", "bound_per_s", "vs_naive", "vs_bound")


def run_bench(tmp_path: Path, *options: str, equal: bool = True) -> dict:
    """Run `bench --quick --json` with tiny nets in a kept work folder and return the JSON (the output kept beside it);
    it exits 0 saying results equal the naive way's, or (equal False) 1 saying a check failed."""
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app, ["bench", "--quick", "--json", str(out), "--workdir", str(tmp_path / "work"), *TINY, *options]
    )
    assert result.exit_code == (0 if equal else 1), result.output
    assert ("results equal the naive way's" if equal else "CHECKS FAILED") in " ".join(result.output.split())
    (tmp_path / "bench.txt").write_text(result.output)
    return json.loads(out.read_text())


def summary_text(tmp_path: Path) -> str:
    """The last run_bench's printed output, lines joined (rich wraps them)."""
    return " ".join((tmp_path / "bench.txt").read_text().split())


def face_photos(tmp_path: Path, realdata: Path) -> Path:
    """A folder holding the real photo of six human faces that the human MTCNN preset finds."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(realfile(realdata, "facenet-pytorch/multiface.jpg"), photos / "multiface.jpg")
    return photos


def test_quick_bench_json_shape_and_equality(tmp_path: Path, realdata: Path) -> None:
    summary = run_bench(
        tmp_path, "--frames", "1", "--audio-rounds", "3", "--extra-images", str(face_photos(tmp_path, realdata))
    )
    assert summary["device"].startswith(("cpu", "cuda")) and summary["peak_rss_mb"] > 0
    for path in ("image", "audio"):
        result = summary[path]
        assert set(RATES) <= set(result) and all(result[key] > 0 for key in RATES)
        assert result["vs_naive"] == pytest.approx(result["pipeline_per_s"] / result["naive_per_s"])
        assert result["vs_bound"] == pytest.approx(result["pipeline_per_s"] / result["bound_per_s"])
    assert summary["audio"]["realtime_x"] > 0
    assert summary["drop"]["images"] == summary["image"]["items"] and summary["drop"]["scene_images"] == 2
    checks = {**summary["image"]["checks"], **summary["audio"]["checks"]}
    drop = summary["drop"]
    assert drop["naive_images"] == min(12, drop["images"]) and drop["naive_faces"] == min(12, drop["faces_classified"])
    assert checks["gender"]["n"] == drop["naive_faces"] > 0 and checks["gender"]["same_items"]
    assert checks["mfcc"]["n"] == checks["mating"]["n"] == drop["naive_segments"] == min(12, drop["segments"]) > 0
    assert checks["mfcc"]["max_relative_error"] <= 1e-4
    assert (
        checks["gender"]["max_abs_diff"]
        <= checks["gender"]["tolerance"]
        == gender_tolerance(checks["gender"]["precision"])
    )  # int8's own tolerance when the gate let it run, bf16's otherwise
    assert f"for {checks['gender']['precision']}" in summary_text(tmp_path)
    assert checks["boxes"]["boxes_naive"] == checks["boxes"]["boxes_pipeline"] > 0
    assert all(check["passed"] for check in checks.values()) and summary["results_equal_naive"] is True
    warmed = HomeLayout(tmp_path / "work" / "warmup" / "home")  # every way ran once, untimed, before the repeats
    assert summary["warmup"] is True and summary["repeats"] == 1
    for table in ("faces", "gender_predictions", "segment_features", "mating_predictions"):
        assert list(warmed.table_dir(table).glob("*/part-*.parquet")), table


def test_the_bound_is_the_fastest_way_tried_and_reports_each(tmp_path: Path) -> None:
    summary = run_bench(tmp_path, "--frames", "0", "--audio-rounds", "1", "--no-warmup", equal=False)
    hardware = read_hardware(torch.device("cpu"))
    for path, net, part in (("image", "gender", "gender"), ("audio", "cganet", "cganet")):
        ways = summary[path][f"bound_{net}"]["ways"]
        assert {label.split()[0] for label in ways} == set(candidate_precisions(hardware, int8=True))
        assert {label.split()[1] for label in ways} == {"channels_last", "contiguous"}
        items = summary["drop"]["faces_classified" if net == "gender" else "segments"]
        assert items / summary[path]["seconds"]["bound"][part] == pytest.approx(max(ways.values()))
        assert summary[path][f"bound_{net}"]["precisions"].keys() == set(candidate_precisions(hardware, int8=True))
    assert [line.split(":")[0] for line in summary["execution"]] == ["gender", "mating"]
    assert "bound, gender net (faces/s)" in summary_text(tmp_path)


def test_a_bench_whose_box_check_compares_nothing_fails(tmp_path: Path) -> None:
    summary = run_bench(tmp_path, "--frames", "0", "--audio-rounds", "1", "--no-warmup", equal=False)
    boxes = summary["image"]["checks"]["boxes"]
    assert boxes["images"] == boxes["boxes_naive"] == 0 and not boxes["passed"] and not summary["results_equal_naive"]
    assert all(
        summary[path]["checks"][check]["passed"]
        for path, check in (("image", "gender"), ("audio", "mfcc"), ("audio", "mating"))
    )
    assert "no face found by either way, so nothing was compared" in summary_text(tmp_path)


def test_the_short_audio_path_is_timed_once_per_round_on_a_fresh_home(tmp_path: Path) -> None:
    summary = run_bench(
        tmp_path, "--frames", "0", "--audio-rounds", "3", "--no-warmup", equal=False
    )  # no face to compare
    assert summary["audio_rounds"] == 3 and summary["repeats"] == 1
    assert summary["audio"]["samples"] == {"pipeline": 3, "naive": 1, "bound": 3}
    assert summary["image"]["samples"] == {"pipeline": 1, "naive": 1, "bound": 1}
    for index in (
        1,
        2,
    ):  # rounds after the repeat's own: the audio stages ran again on their own home, images untouched
        home = HomeLayout(tmp_path / "work" / f"home-0-audio-{index}")
        assert list(home.table_dir("mating_predictions").glob("*/part-*.parquet"))
        assert not list(home.table_dir("faces").glob("*/part-*.parquet"))
    assert "medians of 1 timing(s) of each image way; of 3 of the audio pipeline and bound" in summary_text(tmp_path)


def test_bench_without_warm_up_says_so(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "--quick",
        "--no-warmup",
        "--frames",
        "0",
        "--json",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
        *TINY,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # no scene image: the box check compared nothing
    assert "timed without a warm-up" in " ".join(result.output.split())
    assert json.loads(out.read_text())["warmup"] is False and not (tmp_path / "work" / "warmup").exists()


def test_bench_boxes_match_per_image_mtcnn_on_real_faces(tmp_path: Path, realdata: Path) -> None:
    boxes = run_bench(tmp_path, "--frames", "0", "--extra-images", str(face_photos(tmp_path, realdata)))["image"][
        "checks"
    ]["boxes"]
    assert boxes["boxes_pipeline"] == boxes["boxes_naive"] > 0 and boxes["counts_equal"]
    assert boxes["min_iou"] > 0.9 and boxes["passed"]


def test_bench_refuses_a_missing_extra_images_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "--quick", *TINY, "--extra-images", str(tmp_path / "nope"), "--workdir", str(tmp_path / "w")]
    )
    assert result.exit_code == 1 and f"extra images folder {tmp_path / 'nope'} does not exist" in " ".join(
        result.output.split()
    )


def image_sizes(drop: Path) -> set[tuple[int, int]]:
    """Every (width, height) among a drop's images."""
    sizes = set()
    for path in (drop / "images").rglob("*"):
        if path.is_file():
            with Image.open(path) as image:
                sizes.add(image.size)
    return sizes


def test_the_warm_up_drop_holds_every_image_size_of_the_timed_drop(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    for width, height in [(300, 200), (257, 311)]:
        Image.new("RGB", (width, height), (90, 120, 60)).save(extra / f"{width}x{height}.jpg")
    options = BenchOptions(animals=8, extra_images=extra)
    timed = image_sizes(write_drop(tmp_path / "timed", options))
    warm = image_sizes(write_drop(tmp_path / "warm", warmup_options(options)))
    assert {(300, 200), (257, 311), (1920, 1080), (1280, 720)} <= timed <= warm
