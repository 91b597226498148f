"""Crop affines, inverses and projection: hand-computed values and round trips (numpy and torch)."""

import numpy as np
import pytest
import torch

from posereg.geometry import (
    apply_affine,
    back_project,
    crop_camera,
    crop_points_transform,
    crop_transform,
    cv2_affine,
    invert_affine,
    project,
    rotate_points_about_optical_axis,
)

CAM = np.array([1150.0, 1150.0, 500.0, 500.0])


def test_crop_transform_hand_values():
    A = crop_transform((100.0, 50.0), 200.0, 64)
    # box [0,200]x[-50,150] -> [0,64]^2: scale 0.32
    assert np.allclose(A, [[0.32, 0, 0], [0, 0.32, 16.0]])
    Af = crop_transform((100.0, 50.0), 200.0, 64, flip=True)
    assert np.allclose(apply_affine(Af, np.array([0.0, -50.0])), [64.0, 0.0])
    Ar = crop_transform((0.0, 0.0), 64.0, 64, rotation_deg=90)
    # content rotates counter-clockwise on screen: a point to the right of centre goes up
    assert np.allclose(apply_affine(Ar, np.array([10.0, 0.0])), [32.0, 22.0])


def test_invert_and_apply_round_trip_numpy_and_torch():
    A = crop_transform((321.5, 210.25), 180.0, (128, 128), rotation_deg=23.0, flip=True)
    pts = np.random.default_rng(1).uniform(0, 500, size=(5, 17, 2))
    back = apply_affine(invert_affine(A), apply_affine(A, pts))
    assert np.abs(back - pts).max() < 1e-9
    At = torch.as_tensor(np.stack([A, A]), dtype=torch.float64)
    pt = torch.as_tensor(pts[:2])
    out = apply_affine(At, pt)
    assert torch.allclose(out, torch.as_tensor(apply_affine(A, pts[:2])))
    assert torch.allclose(apply_affine(invert_affine(At), out), pt)


def test_project_back_project_hand_values_and_round_trip():
    X = np.array([[100.0, -200.0, 4000.0]])
    uv = project(X, CAM)
    assert np.allclose(uv, [[500 + 1150 * 0.025, 500 - 1150 * 0.05]])
    assert np.allclose(back_project(uv, X[:, 2], CAM), X)
    Xt = torch.as_tensor(np.random.default_rng(2).normal(size=(3, 17, 3)) * 300 + [0, 0, 5000])
    camt = torch.as_tensor(np.stack([CAM, CAM * 0.5, CAM]))
    uvt = project(Xt, camt)
    assert uvt.shape == (3, 17, 2)
    assert torch.allclose(back_project(uvt, Xt[..., 2], camt), Xt)


@pytest.mark.parametrize("rot,flip", [(0.0, False), (0.0, True), (37.0, False), (-115.0, True)])
def test_crop_camera_is_exact_for_similarity_crops(rot, flip):
    X = np.random.default_rng(3).normal(size=(17, 3)) * 400 + [150, -50, 4500]
    uv = project(X, CAM)
    A = crop_transform(uv.mean(0), 600.0, 128, rotation_deg=rot, flip=flip)
    K = crop_camera(CAM, A)
    Xc = X @ crop_points_transform(A).T
    assert np.abs(project(Xc, K) - apply_affine(A, uv)).max() < 1e-6
    assert np.allclose(Xc[:, 2], X[:, 2])  # depth unchanged
    if not flip:
        assert np.allclose(Xc, rotate_points_about_optical_axis(X, rot))
    else:
        assert rot != 0 or np.allclose(Xc, X * [-1, 1, 1])


def test_cv2_affine_matches_continuous_convention():
    import cv2

    img = np.zeros((40, 40), np.float32)
    img[15, 23] = 1.0  # pixel centre (23.5, 15.5)
    A = crop_transform((20.0, 20.0), 20.0, 40)  # scale 2 around (20, 20)
    out = cv2.warpAffine(img, cv2_affine(A), (40, 40), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(out > 0)
    w = out[ys, xs]
    centroid = np.array([(w * (xs + 0.5)).sum(), (w * (ys + 0.5)).sum()]) / w.sum()
    assert np.allclose(centroid, apply_affine(A, np.array([23.5, 15.5])), atol=1e-4)
