"""`python -m shipline` runs the CLI."""

from shipline.cli.main import main

main()
