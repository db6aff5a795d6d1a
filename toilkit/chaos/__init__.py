"""``make chaos``: toilkit under the faults of issue #13, every service in its own process.

The harness starts a standalone AWS emulator (``python -m toilkit.chaos.emulator``, the
moto server ``toilkit up`` embeds), the Slack stand-in (``python -m toilkit.standins.slack``)
and each service as ``toilkit serve <service>``, all on free loopback ports and in process
groups of their own, which it stops at the end. The services reach the emulator through a
TCP gate in the harness that can refuse connections or black-hole them (an AWS outage).
Each scenario publishes events, injects its fault, waits until the system is quiet, then
counts what reached Slack (messages keyed by the event id in their metadata) against what
was published: lost (never posted) and duplicated (posted more than once).

It lives in ``toilkit/`` rather than ``bench/`` because it is a tool for users (``make
chaos``, ``python -m toilkit.chaos``) and because the test that runs the reduced set imports
it; ``bench/`` holds standalone scripts.
"""
