"""`python -m evals` runs the CLI."""

from evals.cli import main

main()
