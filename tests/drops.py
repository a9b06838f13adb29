"""Small drops written in tmp_path for tests (the full generator is models/synthetic/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import ExifTags, Image

DROP_TOML = 'site = "Test Station"\ndeployment_id = "dep-1"\ntimezone = "Asia/Shanghai"\n'


def camera_jpeg(path: Path, seed: int, size: tuple[int, int] = (160, 120), taken: str = "2026:03:04 21:00:00") -> Path:
    """A noisy JPEG with camera EXIF (make, model, DateTimeOriginal)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "RECONYX"
    exif[ExifTags.Base.Model] = "HC550 HYPERFIRE"
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: taken}
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90, exif=exif)
    return path


def stereo_wav(path: Path, seed: int, seconds: float = 3.0, rate: int = 44_100) -> Path:
    """A two-channel 16-bit WAV of quiet noise with a tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 600 * t)
    data = np.stack(
        [tone + 0.01 * rng.standard_normal(t.size), 0.5 * tone + 0.01 * rng.standard_normal(t.size)], axis=1
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), rate, subtype="PCM_16")
    return path


def write_small_drop(root: Path, seed: int = 0, n_images: int = 4, bad_file: bool = True) -> Path:
    """A drop with manifests, keeper faces, camera frames, one recording and optionally one garbled image."""
    root.mkdir(parents=True)
    (root / "drop.toml").write_text(DROP_TOML)
    (root / "animals.csv").write_text("animal_id,sex,birth_date,name\nA01,female,2015-08-01,Mei\nA02,male,,\nA03,,,\n")
    (root / "encounters.csv").write_text(
        "encounter_id,recording,male_id,female_id,started_at,outcome\n"
        "E01,audio/E01.wav,A02,A01,2026-03-04T21:00:00,success\n"
    )
    for index in range(n_images):
        camera_jpeg(root / "images" / "cam01" / f"IMG_{index:04d}.JPG", seed * 100 + index)
    camera_jpeg(root / "faces" / "A01" / "f1.jpg", seed * 100 + 50, size=(64, 64))
    camera_jpeg(root / "images" / "A02" / "p1.jpg", seed * 100 + 51, size=(64, 64))
    stereo_wav(root / "audio" / "E01.wav", seed)
    if bad_file:
        (root / "images" / "cam01" / "garbled.jpg").write_bytes(b"not a jpeg at all")
    return root
