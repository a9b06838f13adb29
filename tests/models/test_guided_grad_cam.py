"""Seed 001's guided Grad-CAM of one face, in the net and through the review app's on-demand endpoint."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.gender import GuidedReLU, build_gender_net, guided_copy, guided_grad_cam
from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.model_store import save_checkpoint
from tests.flows.test_review_app import client_for, opened
from tests.review_home import DROP, GENDER, write_review_home

SIZE = 64


def test_guided_backprop_passes_only_positive_gradients_through_positive_activations() -> None:
    x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    (gradient,) = torch.autograd.grad((GuidedReLU()(x) * torch.tensor([3.0, -2.0, 4.0])).sum(), x)
    assert gradient.tolist() == [0.0, 0.0, 4.0]  # plain ReLU would give [0, -2, 4]


def test_guided_grad_cam_is_an_image_and_leaves_the_net_untouched() -> None:
    torch.manual_seed(0)
    net = build_gender_net("mini_xception", SIZE).eval()
    before = {name: value.clone() for name, value in net.state_dict().items()}
    image = torch.randn(3, SIZE, SIZE)
    shown = guided_grad_cam(net, image, 1)
    assert shown.shape == (SIZE, SIZE, 3) and shown.dtype.kind == "f"
    assert 0.0 <= shown.min() and shown.max() <= 1.0 and shown.std() > 0, "a picture, not a flat grey"
    assert not any(isinstance(m, GuidedReLU) for m in net.modules()), "the net itself keeps its ReLUs"
    assert any(isinstance(m, GuidedReLU) for m in guided_copy(net).modules())
    assert not any(isinstance(m, nn.ReLU) for m in guided_copy(net).modules())
    assert all(torch.equal(before[name], value) for name, value in net.state_dict().items())
    assert np.array_equal(shown, guided_grad_cam(net, image, 1)), "deterministic"


def test_the_review_app_computes_a_faces_guided_grad_cam_on_demand(tmp_path: Path) -> None:
    home: HomeLayout = write_review_home(tmp_path / "home")
    name = GENDER.split("@v")[0]
    net = build_gender_net("mini_xception", SIZE)
    card = {"name": name, "arch": "mini_xception", "input_size": SIZE, "kind": "gender"}
    assert save_checkpoint(home.model_dir("gender", name), net.state_dict(), card)[0] == 1  # the calls' version
    face_key = query(home, "SELECT key FROM review_items WHERE kind = 'face' ORDER BY key LIMIT 1").to_pylist()[0][
        "key"
    ]
    client = client_for(home)
    headers = {"X-CSRF-Token": opened(client)}
    answer = client.post("/api/explain", json={"key": face_key}, headers=headers)
    assert answer.status_code == 200, answer.text
    shown = client.get(answer.json()["image"])
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    stored = home.root / unquote(answer.json()["image"].removeprefix("/files/"))
    assert stored.name.endswith("-guided.png") and Image.open(stored).size == (64, 64)  # the crop's size
    written = stored.stat().st_mtime_ns
    again = client.post("/api/explain", json={"key": face_key}, headers=headers)
    assert again.json() == answer.json() and stored.stat().st_mtime_ns == written, "computed once, then served"
    refused = client.post("/api/explain", json={"key": "encounter:d1:E01"}, headers=headers)
    assert refused.status_code == 400 and "Only a face" in refused.json()["error"]
    missing = client.post("/api/explain", json={"key": f"face:{DROP}:nothing-f0"}, headers=headers)
    assert missing.status_code == 404 and "no gender call" in missing.json()["error"]
    assert client.post("/api/explain", json={"key": face_key}).status_code == 403, "CSRF like every POST"
