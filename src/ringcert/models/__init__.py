"""Classifier architecture, model files (weights + metadata), ONNX import and export."""
