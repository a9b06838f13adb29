"""`python -m flows.cli`: the breedwatch command line."""

from flows.cli import main

main()
