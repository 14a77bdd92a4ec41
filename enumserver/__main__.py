"""`python -m enumserver` runs the server CLI."""

from enumserver.cli import main

main()
