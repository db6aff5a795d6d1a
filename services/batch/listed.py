"""A listed choice (``options_from``) is checked again here: the value must be in its list.

The gateway checks it before the modal closes; the batch service never trusts the gateway
(and a re-run or a schedule asks for values nobody picked just now), so it checks again
against the list in the state table, fetching it first when there is none from the current
source definition (the batch service fetches every kind of source).
"""

from __future__ import annotations

from shared.catalog import ChoiceParameter, ValidatedRequest
from shared.options_fetch import ListedParameter, OptionsRefresher


async def listed_value_refusal(
    options: OptionsRefresher | None, request: ValidatedRequest
) -> str | None:
    """Why a listed value of ``request`` is refused (None: each is in its list).

    Raises:
        TransientError: the state table could not be read or written (try again later).
    """
    if options is None:
        return None
    for spec in request.command.parameters:
        value = request.values.get(spec.name)
        if not isinstance(spec, ChoiceParameter) or spec.options_from is None or value is None:
            continue
        listed = ListedParameter(request.command.name, spec.name, spec.options_from)
        fingerprint = spec.options_from.fingerprint()
        record = await options.read(listed)
        if record is None or not record.usable(fingerprint):
            record = await options.refresh(listed, record)
        if not record.usable(fingerprint):
            return (
                f"{spec.name}: the list of choices is unavailable ({record.error}), so "
                f"{value!r} cannot be checked"
            )
        if value not in record.values():
            return f"{spec.name}: {value!r} is not in the list from {spec.options_from.describe()}"
    return None
