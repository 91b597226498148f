"""posereg: human pose regression in 2D and 3D."""

__version__ = "0.1.0"
