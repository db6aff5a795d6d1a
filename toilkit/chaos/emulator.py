"""``python -m toilkit.chaos.emulator PORT``: the embedded moto server as a process of its own.

Prints ``ready`` once serving; SIGTERM stops it.
"""

from __future__ import annotations

import signal
import sys
import threading

from toilkit.embedded import EmbeddedAws, use_dummy_credentials


def main() -> None:
    use_dummy_credentials()
    aws = EmbeddedAws(port=int(sys.argv[1]))
    aws.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    aws.stop()


if __name__ == "__main__":
    main()
