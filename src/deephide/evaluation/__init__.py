"""Evaluation: the victim trainer, experiment grids (local / Ray), statistics and reports."""
