"""Understanding a Terraform plan: what drifted, and what Terraform would change.

:func:`parse_plan` turns the output of ``terraform show -json <planfile>`` (Terraform or
OpenTofu, plan format versions 0.x and 1.x) into a :class:`PlanSummary`. It is pure: no
I/O, no clock (the caller passes ``now``), no globals.

Two kinds of finding, kept apart in every output:

* ``drift``: an entry of ``resource_drift``. The real resource changed outside Terraform
  since the last apply (a console change, an emergency fix).
* ``pending``: an entry of ``resource_changes`` whose actions are not ``no-op``/``read``.
  Terraform would change the resource: code that was never applied, or a drift that the
  next apply would revert. A drifted resource therefore often has both findings.

Data sources (``mode: data``) are never findings.

Attribute paths
    Each changed leaf gets a path: object attributes and map keys joined with dots, list
    (and set) elements as ``[index]``: ``tags.Env``, ``ingress[0].cidr_blocks[1]``. A map
    key that is not an identifier (letters, digits, ``_``, ``-``, not starting with a
    digit) is written as a JSON string in brackets, so ``metadata["a.b"]`` can never be
    confused with ``metadata.a.b``.

What a finding lists
    * update, replace (both orders) and any other multi-action change: every changed
      leaf, as Terraform's own diff does. A value that Terraform only knows after apply
      has ``after=None, after_unknown=True``. For a replace, leaves under a
      ``replace_paths`` entry have ``forces_replacement=True``.
    * create, delete, forget: no attributes by default. A create lists only what the
      code says (nothing drifted), a delete says the resource goes; exploding every
      attribute would drown the one line a reader needs. ``expand_create_delete=True``
      lists them anyway.

Sensitive values never leave this package. A leaf is sensitive when Terraform's
``before_sensitive``/``after_sensitive`` tree marks it or one of its ancestors; both its
sides are replaced by :data:`shared.events.SENSITIVE` (a sensitive map is masked whole,
keys included). An output is sensitive when its change or its declaration says so. A
sensitivity tree of a shape this package does not understand counts as sensitive.

Fingerprint
    sha256 over ``[state, address, kind, change, deposed key, sorted attribute paths]``,
    first 16 hex digits. Values are left out because they move while the drift stays the
    same (someone keeps resizing the same instance by hand); times are left out so that
    every scan computes the same fingerprint for the same drift. ``change`` (create,
    update, delete, replace...) is included because a create and a delete carry no
    attribute paths and would otherwise collide; both replace orders count as
    ``replace``. Only the paths that are not ignored count (all of them when every one
    is ignored), so provider noise appearing next to a real drift does not make it a new
    finding.

Where it lives
    :mod:`.parse` runs the steps: :mod:`.reading` decodes and checks the document,
    :mod:`.findings` builds one finding per resource change from the changed leaves that
    :mod:`.values` finds (and masks), :mod:`.outputs` does the same for outputs; the
    results are the models of :mod:`.models`.
"""

from services.detector.plan.findings import change_name, fingerprint, render_path
from services.detector.plan.models import (
    OutputChange,
    PlanAttribute,
    PlanFinding,
    PlanParseError,
    PlanSummary,
    to_event_finding,
)
from services.detector.plan.parse import parse_plan
from services.detector.plan.reading import SUPPORTED_FORMAT_MAJORS
from services.detector.plan.values import PathStep

__all__ = [
    "SUPPORTED_FORMAT_MAJORS",
    "OutputChange",
    "PathStep",
    "PlanAttribute",
    "PlanFinding",
    "PlanParseError",
    "PlanSummary",
    "change_name",
    "fingerprint",
    "parse_plan",
    "render_path",
    "to_event_finding",
]
