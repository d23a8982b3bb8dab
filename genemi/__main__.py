"""`python -m genemi`: the `genemi` command (genemi/cli.py)."""

from genemi.cli import main

main(prog_name="genemi")
