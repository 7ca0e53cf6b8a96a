"""The sharding engine the image and feature sources share: plan rows into units, run the units
in a resumable worker pool, record them, assemble the manifest, merge `--part` runs."""
