"""On-demand explanations of one face's gender call for the review app: seed 001's guided Grad-CAM, computed once with
the model version that made the call and stored beside the run's Grad-CAM overlays."""

from __future__ import annotations

import io

from PIL import Image

from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.lake import write_bytes_atomic

FACE_CALL_SQL = """
    SELECT g.p_male, g.model_version, f.crop_path FROM gender_predictions g JOIN faces f USING (drop_id, face_id)
    WHERE g.drop_id = ? AND g.face_id = ? AND f.crop_path IS NOT NULL LIMIT 1
"""


def guided_path(drop_id: str, face_id: str) -> str:
    """Where a face's guided Grad-CAM is stored, relative to the home (served with the Grad-CAM overlays)."""
    return f"lake/gradcam/drop={drop_id}/{face_id}-guided.png"


def explain_face(home: HomeLayout, drop_id: str, face_id: str) -> str:
    """The home-relative path of one face's guided Grad-CAM for its predicted class, computed and stored on the first
    request (torch is imported here, not when the app starts)."""
    relative = guided_path(drop_id, face_id)
    if (home.root / relative).is_file():
        return relative
    found = query(home, FACE_CALL_SQL, [drop_id, face_id]).to_pylist()
    if not found:
        raise LookupError(f"There is no gender call on face {face_id} in drop {drop_id} to explain.")
    call = found[0]
    from models.gender import guided_grad_cam, preprocess
    from models.training import POSITIVE_AT
    from tasks.gender_training import load_gender_model

    model, _ = load_gender_model(home, call["model_version"])
    with Image.open(home.root / call["crop_path"]) as crop:
        image = crop.convert("RGB")
    shown = guided_grad_cam(model, preprocess(image, model.input_size), 1 if call["p_male"] >= POSITIVE_AT else 0)
    picture = Image.fromarray((255 * shown).round().astype("uint8")).resize(image.size, Image.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    write_bytes_atomic(home.root / relative, buffer.getvalue())
    return relative
