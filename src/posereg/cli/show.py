"""posereg-show: write a PNG grid of data samples with their skeletons (what the model sees).

Usage: ``posereg-show data=synth2d [n=16] [out=samples.png] [split=train] [any other override]``.
The config is composed from the same tree and overrides as training.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from hydra.errors import HydraException

from posereg.data.transforms import denormalize_image
from posereg.errors import ConfigError, DataError, require_int
from posereg.skeletons import get_joint_set

LEFT, RIGHT, CENTRE = (60, 120, 255), (255, 80, 60), (60, 220, 60)  # RGB


def conf_dir() -> Path:
    """The Hydra config directory of the repository."""
    try:
        from posereg.paths import CONF_DIR

        return Path(CONF_DIR)
    except ImportError:
        return Path(__file__).resolve().parents[3] / "conf"


def draw_skeleton(image: np.ndarray, joints_2d: Any, weights: Any, joint_set: str, scale: float = 1.0) -> np.ndarray:
    """Draw bones and joints (left blue, right red, centre green) on an RGB uint8 image; labelled joints only."""
    js = get_joint_set(joint_set)
    img = np.ascontiguousarray(image).copy()
    pts = np.asarray(joints_2d, dtype=np.float64) * scale
    vis = np.asarray(weights)[:, :2].min(axis=1) > 0
    colour = {"l": LEFT, "r": RIGHT, "c": CENTRE}

    def fx(p: np.ndarray) -> tuple[int, int]:
        return int(round((p[0] - 0.5) * 16)), int(round((p[1] - 0.5) * 16))

    for a, b in js.bones:
        if vis[a] and vis[b]:
            side = js.side(b) if js.side(b) != "c" else js.side(a)
            cv2.line(img, fx(pts[a]), fx(pts[b]), colour[side], 2, cv2.LINE_AA, 4)
    for j in np.flatnonzero(vis):
        cv2.circle(img, fx(pts[j]), 3 * 16, colour[js.side(j)], -1, cv2.LINE_AA, 4)
        cv2.circle(img, fx(pts[j]), 3 * 16, (255, 255, 255), 1, cv2.LINE_AA, 4)
    return img


def sample_grid(samples: list[dict[str, Any]], joint_set: str, cell: int = 192) -> np.ndarray:
    """Tile samples (dicts of the sample contract) into one RGB image with skeletons drawn."""
    n = len(samples)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * cell, cols * cell, 3), 255, np.uint8)
    for k, s in enumerate(samples):
        img = denormalize_image(s["image"])
        scale = cell / img.shape[1]
        img = cv2.resize(img, (cell, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_LINEAR)
        img = draw_skeleton(img[:cell], np.asarray(s["joints_2d"]), np.asarray(s["weights"]), joint_set, scale)
        r, c = divmod(k, cols)
        grid[r * cell:r * cell + img.shape[0], c * cell:(c + 1) * cell] = img
    return grid


USAGE = "posereg-show [data=<option>] [n=16] [out=samples.png] [split=train|val|test] [any other override]"


def _split_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    own, overrides = {}, []
    for a in argv:
        key = a.split("=", 1)[0]
        if key in ("n", "out", "split") and "=" in a:
            own[key] = a.split("=", 1)[1]
        else:
            overrides.append(a)
    return own, overrides


def write_samples(argv: list[str]) -> Path:
    """Compose the config with the overrides, build the data module and write the grid PNG."""
    from hydra import compose, initialize_config_dir

    from posereg.data import build_datamodule
    from posereg.runs import register_resolvers

    own, overrides = _split_args(argv)
    n, split = require_int(own.get("n", 16), "n", 1), own.get("split", "train")
    out = Path(own.get("out", "samples.png"))
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split={split!r}: choose train, val or test")
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        try:
            cfg = compose(config_name="config", overrides=overrides)
        except HydraException as err:
            raise ConfigError(str(err).splitlines()[0]) from None
    dm = build_datamodule(cfg)
    samples = dm.preview(split, n)
    grid = sample_grid(samples, dm.info.joint_set)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {len(samples)} {split} samples of data={dm.info.dataset_names} to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Console entry point (posereg-show): 0 on success, 2 on a bad setting."""
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in args):
        print(f"usage: {USAGE}\n\n{__doc__.splitlines()[0]}")
        return 0
    try:
        write_samples(args)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
