"""Digit sources and the DOUBLE-MNIST generator."""
