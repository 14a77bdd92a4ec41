"""`python -m zonetools` runs the publishing CLI."""

from zonetools.cli import main

main()
