"""Accept a drift into code: patch the Terraform so it says what reality says, and push it.

:mod:`.patch` builds the edit (pure: files in, texts out), :mod:`.hcl` reads and writes
HCL literals in place, :mod:`.git` pushes the edit as a branch of the infrastructure
repository and says where to compare it.
"""

from services.detector.accept.patch import (
    AcceptedCode,
    CodePatch,
    FileEdit,
    PatchError,
    ResourceAddress,
    Skipped,
    accept_findings,
    accept_patch,
    parse_path,
)

__all__ = [
    "AcceptedCode",
    "CodePatch",
    "FileEdit",
    "PatchError",
    "ResourceAddress",
    "Skipped",
    "accept_findings",
    "accept_patch",
    "parse_path",
]
