"""Reports from stored results: heatmaps, plots, HTML (read results; never verify)."""
