"""``python -m toilkit.standins.slack``: see :func:`toilkit.standins.slack.run.main`."""

from toilkit.standins.slack.run import main

main()
