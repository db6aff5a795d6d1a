"""``python -m toilkit`` runs the command line."""

from toilkit.cli import main

main()
