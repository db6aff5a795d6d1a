"""toilkit command line and the embedded (single-process) runner."""

import gc
import os

# In a Lambda function's init phase (the handler module, toilkit.aws_lambda, imports
# everything and opens the sandbox while it is imported) the cyclic garbage collector would
# scan the growing heap again and again, some 50 ms of a cold start, and find next to
# nothing. toilkit.aws_lambda turns it back on once the sandbox is open.
#
# pydantic looks for plugins among the entry points of every installed distribution when it
# builds its first model (a few ms of a cold start); a function's package holds none
# (tests/unit/test_lambda_packages.py), so it is told not to look.
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"):
    gc.disable()
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
