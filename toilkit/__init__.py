"""toilkit command line and the embedded (single-process) runner."""

import gc
import os
import sys
import types

#: What ``PYDANTIC_DISABLE_PLUGINS`` holds when pydantic loads no plugin at all.
NO_PYDANTIC_PLUGINS = ("__all__", "1", "true")


def _answer_no_pydantic_plugins() -> None:
    """Put a module whose ``get_plugins`` answers none in place of pydantic's plugin
    loader, which answers just that with plugins disabled, but whose import (of
    ``importlib.metadata``, email parsing, zipfile, csv) cost a cold start ~14 ms of CPU."""
    loader = types.ModuleType("pydantic.plugin._loader", "No pydantic plugins (toilkit).")
    loader.get_plugins = tuple  # type: ignore[attr-defined]  # get_plugins() -> ()
    sys.modules.setdefault(loader.__name__, loader)


# In a Lambda function's init phase (the handler module, toilkit.aws_lambda, imports
# everything and opens the sandbox while it is imported) the cyclic garbage collector would
# scan the growing heap again and again, some 50 ms of a cold start, and find next to
# nothing. toilkit.aws_lambda turns it back on once the sandbox is open.
#
# pydantic looks for plugins among the entry points of every installed distribution when it
# builds its first model (a few ms of a cold start); a function's package holds none
# (tests/unit/test_lambda_packages.py), so it is told not to look, and its loader is not
# even imported.
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"):
    gc.disable()
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ["PYDANTIC_DISABLE_PLUGINS"] in NO_PYDANTIC_PLUGINS:
        _answer_no_pydantic_plugins()
