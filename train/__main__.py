"""`python -m babylm.train` = `babylm-train` (handy under torchrun)."""

from babylm.train.cli import main

main()
