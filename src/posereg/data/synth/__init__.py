"""SynthPose: the embedded procedural 2D/3D human pose dataset."""

from posereg.data.synth.dataset import VARIANTS, SynthConfig, SynthPose, synth_config

__all__ = ["VARIANTS", "SynthConfig", "SynthPose", "synth_config"]
