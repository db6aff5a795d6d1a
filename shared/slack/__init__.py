"""Everything two parts of toilkit must agree on about Slack.

* :mod:`shared.slack.actions`: the action ids of toilkit's buttons and the values they carry,
  each with its encoder and decoder (the notifier draws the buttons, the gateway reads them).
* :mod:`shared.slack.blocks`: Block Kit helpers and Slack's size limits.
* :mod:`shared.slack.signing`: request signing and verification on ``slack_sdk.signature``.
* :mod:`shared.slack.groups`: the cached user-group directory.
* :mod:`shared.slack.settings`: the one ``SlackSettings`` model every service nests.
"""
