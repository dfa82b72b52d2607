"""Slack: Block Kit cards, the outbound messenger, and the inbound handlers (slack-bolt).

- :mod:`bot.slack.render`: pure Block Kit rendering from the channel-neutral view model.
- :mod:`bot.slack.messenger`: :class:`~bot.slack.messenger.SlackMessenger`, the outbound side
  workers use to post and update cards.
- :mod:`bot.slack.web`: ``setup(app, rt)`` mounts the slack-bolt app at ``POST /slack/events``.
- :mod:`bot.slack.socket`: Socket Mode for workspaces without a public URL.
"""
