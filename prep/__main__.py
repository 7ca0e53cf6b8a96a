"""`python -m babylm.prep` = `babylm-prep`."""

from babylm.prep.cli import main

main()
