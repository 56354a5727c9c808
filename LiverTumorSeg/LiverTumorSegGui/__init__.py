"""Qt parts of the LiverTumorSeg panel that live outside LiverTumorSeg.py (one section per file)."""
