"""Figures of network internals (learned maps) and the callbacks that log them."""
