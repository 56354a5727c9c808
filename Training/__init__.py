"""Training, evaluation and export of the LiverTumorSeg cascade models (PyTorch; not part of the library)."""
