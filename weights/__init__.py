"""Pretrained weights bundled with the package, one folder per model, laid out as a Hub repo."""
