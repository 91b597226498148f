"""Export a PoseModule's network to ONNX or TorchScript as a plain image -> joints function.

The exported graph takes ``image`` (B,3,H,W), float32, normalised as the datasets do (ImageNet mean/std
of RGB in [0, 1], ``posereg.data.transforms.to_tensor_image``), with a dynamic batch axis, and returns
the prediction (the `cut` output; flip averaging only when asked) as:

* ``joints_crop_px`` (B,J,2): crop pixels, continuous (top-left corner 0, pixel centre at +0.5);
* ``z_rel_mm`` (B,J), 3D models only: root-relative depth, (z_n - 0.5) * depth_range;
* ``coords_unit`` (B,J,2|3): the network's unit coordinates (u = x/W, v = y/H, z_n);
* ``joint_conf`` (B,J), networks with joint-presence logits only (SSP-Net, Luvizon'17): their sigmoid.

Original image pixels are ``crop_to_image`` applied to ``joints_crop_px`` (the inverse of the crop affine).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from posereg.errors import ConfigError
from posereg.methods import PoseModule
from posereg.ops import average_flip, flip_coords_unit
from posereg.skeletons import get_joint_set


class ExportedPose(nn.Module):
    """The module's network stopped at its cut output, plus the unit -> crop-pixel conversion."""

    def __init__(self, module: PoseModule, flip_test: bool = False):
        super().__init__()
        self.net = module.net
        self.stop = module.cut.stop
        self.index = module.cut_index
        self.dims = int(module.codec.dims)
        self.depth_range = float(module.codec.depth_range)
        self.height, self.width = module.codec.height, module.codec.width
        if flip_test and module.flip_index is None:
            raise ConfigError("flip_test=true needs the joint set's flip_index")
        self.flip_index = list(module.flip_index) if flip_test and module.flip_index is not None else None
        self.register_buffer("scale", torch.tensor([float(self.width), float(self.height)]), persistent=False)
        with torch.no_grad():
            was = self.net.training
            self.net.eval()
            device = next(self.net.parameters()).device
            probe = self.net(torch.zeros(1, 3, self.height, self.width, device=device), cut=self.stop)[self.index]
            self.net.train(was)
        self.has_conf = probe.get("conf_logits") is not None

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs, in order."""
        names = ["joints_crop_px"] + (["z_rel_mm"] if self.dims == 3 else []) + ["coords_unit"]
        return names + (["joint_conf"] if self.has_conf else [])

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """See the module docstring for the outputs."""
        out = self.net(image, cut=self.stop)[self.index]
        unit = out["coords"]
        if self.flip_index is not None:
            flipped = self.net(image.flip(-1), cut=self.stop)[self.index]["coords"]
            unit = average_flip(unit, flip_coords_unit(flipped, self.flip_index))
        result = [unit[..., :2] * self.scale]
        if self.dims == 3:
            result.append((unit[..., 2] - 0.5) * self.depth_range)
        result.append(unit)
        if self.has_conf:
            result.append(torch.sigmoid(out["conf_logits"]))
        return tuple(result)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' chatter (opset conversion notes, TorchScript's deprecation) for one call."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "torch.export")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def example_input(wrapper: ExportedPose, batch: int = 2) -> torch.Tensor:
    """A random normalised image batch of the network's input size."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, wrapper.height, wrapper.width, generator=g)


def export_onnx(wrapper: ExportedPose, path: Path, opset: int = 17) -> Path:
    """Write the ONNX graph (input ``image``, dynamic batch axis) to path."""
    wrapper = wrapper.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    names = wrapper.output_names
    batch = torch.export.Dim("batch", min=1, max=4096)
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(wrapper, (example_input(wrapper),), dynamo=True, opset_version=int(opset),
                                    input_names=["image"], output_names=names,
                                    dynamic_shapes={"image": {0: batch}}, verbose=False)
    program.save(str(path))
    return path


def export_torchscript(wrapper: ExportedPose, path: Path) -> Path:
    """Trace the wrapper and save it (call with one image batch; returns the same tuple)."""
    wrapper = wrapper.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(wrapper, (example_input(wrapper),), check_inputs=[(example_input(wrapper, 3),)])
    traced.save(str(path))
    return path


def max_difference(wrapper: ExportedPose, path: Path, fmt: str, batch: int = 2) -> dict[str, float]:
    """Largest |exported - PyTorch| per output on a random batch (ONNX through onnxruntime)."""
    x = example_input(wrapper, batch)
    with _quiet(), torch.no_grad():
        ref = [r.numpy() for r in wrapper.eval()(x)]
        if fmt == "onnx":
            import onnxruntime as ort

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {"image": x.numpy()})
        else:
            got = [g.numpy() for g in torch.jit.load(str(path))(x)]
    return {n: float(abs(r - g).max()) for n, r, g in zip(wrapper.output_names, ref, got, strict=True)}


def description(wrapper: ExportedPose, joint_set: str, fmt: str) -> dict[str, object]:
    """What a consumer of the exported file needs: input layout and normalisation, outputs and their units."""
    from posereg.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    joints = get_joint_set(joint_set).num_joints
    shapes = {"joints_crop_px": ["batch", joints, 2], "z_rel_mm": ["batch", joints],
              "coords_unit": ["batch", joints, wrapper.dims], "joint_conf": ["batch", joints]}
    return {
        "format": fmt, "input": {"name": "image", "shape": ["batch", 3, wrapper.height, wrapper.width],
                                 "rgb_mean": [round(float(v), 6) for v in IMAGENET_MEAN],
                                 "rgb_std": [round(float(v), 6) for v in IMAGENET_STD],
                                 "normalisation": "(rgb / 255 - mean) / std, channels first"},
        "outputs": wrapper.output_names, "shapes": {n: shapes[n] for n in wrapper.output_names},
        "joint_set": joint_set, "dims": wrapper.dims,
        "depth_range": wrapper.depth_range, "flip_test": wrapper.flip_index is not None,
        "units": {"joints_crop_px": "crop pixels, pixel centre at +0.5", "z_rel_mm": "(z_n - 0.5) * depth_range",
                  "coords_unit": "u = x/W, v = y/H, z_n", "joint_conf": "sigmoid of joint-presence logits"},
    }
