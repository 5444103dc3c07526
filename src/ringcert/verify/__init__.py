"""Verifiers for the top-k layered-neighborhood query (DESIGN.md section 2)."""
