"""Which device a process computes on, the mixed precision it trains in, and the hardware model a run records."""

from __future__ import annotations

import platform
from functools import lru_cache

import torch

from posereg.errors import ConfigError


def pick_device(name: str | None = "auto") -> torch.device:
    """`auto` (or empty): cuda when available, else cpu; ConfigError for cuda on a machine without it."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: this machine has no CUDA device; use device=cpu")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ConfigError(f"device={name}: use cpu or cuda (cuda:<index>)")
    return torch.device(name)


def amp_precision() -> str:
    """`${amp_precision:}`: `bf16-mixed` on a GPU with native bf16 (compute capability >= 8.0), else `16-mixed`."""
    if not torch.cuda.is_available():
        return "16-mixed"
    if torch.version.hip:  # ROCm: torch knows which Instinct / Radeon parts compute bf16
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    # is_bf16_supported() also says yes for pre-Ampere GPUs that only emulate bf16 (slower than fp16 there)
    return "bf16-mixed" if torch.cuda.get_device_capability()[0] >= 8 else "16-mixed"


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (e.g. 'AMD EPYC'), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_model(device: torch.device | str) -> str:
    """The model of the hardware a run computes on: the GPU's name for cuda, the CPU's model otherwise."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return cpu_model()
