"""Readers of the raw datasets (CC-3M, Localized Narratives, precomputed features, demo data):
each lists its input as rows, builds a processor, and runs one frozen config (`run_*`)."""
