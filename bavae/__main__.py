"""`python -m bavae` is the `bavae` command."""

from .cli import main

main()
