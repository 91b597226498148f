"""What `PoseModel.predict` returns for one image (or video frame): the people in it, as arrays.

Coordinates follow docs/architecture.md §3: 2D joints in original image pixels, continuous (the top-left
corner is (0, 0), a pixel's centre at +0.5); 3D joints in millimetres in the camera frame (x right, y down,
z forward), root-relative (the joint set's root at 0) unless stated. How the 3D fields are made:
`posereg.inference.predictor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from posereg.skeletons import get_joint_set


@dataclass(frozen=True)
class PoseResult:
    """The N people of one image: joints, scores, the boxes they were cropped from, and the joint set's names."""

    joints_2d: np.ndarray  # (N,J,2) original image pixels
    scores: np.ndarray  # (N,) box score x mean joint confidence (1 without either)
    boxes: np.ndarray  # (N,4) x, y, w, h in image pixels: the person boxes the crops were made from
    joint_set: str
    joint_names: tuple[str, ...]
    joints_3d: np.ndarray | None = None  # (N,J,3) mm, camera frame, root-relative; None for a 2D model
    joints_3d_abs: np.ndarray | None = None  # (N,J,3) mm, camera frame: with the model's root depth and a camera
    joint_conf: np.ndarray | None = None  # (N,J) joint-presence probabilities, for networks that have them
    frame: int = -1  # the frame index in a video, -1 for a still image

    def __len__(self) -> int:
        return int(self.joints_2d.shape[0])

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) joint index pairs of the skeleton, for drawing."""
        return get_joint_set(self.joint_set).bones

    def joint(self, name: str) -> np.ndarray:
        """(N,2) image pixels of one joint by name (e.g. "l_wrist")."""
        if name not in self.joint_names:
            raise KeyError(f"{self.joint_set} has no joint {name!r}; its joints: {', '.join(self.joint_names)}")
        return self.joints_2d[:, self.joint_names.index(name)]

    def draw(self, image: Any) -> np.ndarray:
        """A copy of the RGB image (array or PIL image) with every person's skeleton and box drawn on it."""
        from posereg.viz.overlay import draw_pose  # OpenCV and matplotlib: only when something is drawn

        canvas = np.array(image, dtype=np.uint8, copy=True)
        for person, box in zip(self.joints_2d, self.boxes, strict=True):
            canvas = draw_pose(canvas, person, self.joint_set, box)
        return canvas

    @classmethod
    def from_people(cls, people: Sequence[dict[str, Any]], joint_set: str, dims: int, frame: int = -1
                    ) -> PoseResult:
        """The result of the predictor's per-person records (`posereg.inference.writer` describes them) of a
        `dims`-D model."""
        js = get_joint_set(joint_set)
        n, j = len(people), js.num_joints

        def stack(key: str, shape: tuple[int, ...]) -> np.ndarray | None:
            if n and people[0].get(key) is None:
                return None
            return np.asarray([p[key] for p in people], dtype=np.float64).reshape(n, *shape)

        three_d = dims == 3
        return cls(
            joints_2d=stack("joints_2d", (j, 2)), scores=np.asarray([p["score"] for p in people], dtype=np.float64),
            boxes=stack("bbox", (4,)), joint_set=js.name, joint_names=js.names,
            joints_3d=stack("joints_3d_rel_mm", (j, 3)) if three_d else None,
            joints_3d_abs=stack("joints_3d_abs_mm", (j, 3)) if three_d else None,
            joint_conf=stack("joint_conf", (j,)), frame=frame)
