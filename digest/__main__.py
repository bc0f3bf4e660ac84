"""`python -m digest` runs the same CLI as the `digest` console script."""

from digest.cli import main

main()
