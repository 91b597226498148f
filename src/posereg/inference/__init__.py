"""Inference with finished runs: prediction on images and videos (inputs, boxes, predictor, writer), ONNX and
TorchScript export, and DeepSkeleton's hypothesis selection over several runs."""
