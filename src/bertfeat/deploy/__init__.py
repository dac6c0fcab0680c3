"""Leaving Python's research loop: ONNX export, the torch-free runtime, Dask."""
