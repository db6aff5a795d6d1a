"""The shared DynamoDB state table: its key layout, read models and access helpers.

One table (hash ``pk``, range ``sk``, TTL ``expires_at`` in epoch seconds) holds every
service's state. Each service writes only its own items; another service reads them only
through the models here, so the layout is written down once:

* :mod:`shared.state_table.keys`: every partition and sort key, and the time format of keys;
* :mod:`shared.state_table.access`: ``query_all`` (paging), ``batch_put`` (unprocessed items
  retried), and conditional writes that raise :class:`~shared.errors.ConditionFailed`;
* :mod:`shared.state_table.runs`: the batch service's run record and list of runs, and
  their readers (used by the gateway and the CLI too);
* :mod:`shared.state_table.drift`: the detector's scanned states and open findings (read by
  the gateway);
* :mod:`shared.state_table.drift_actions`: ignore rules written from Slack or the CLI, the
  one-scan-in-flight slot per state, and the drift buttons' audit trail.
"""
