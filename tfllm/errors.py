"""Errors the CLIs report on one line: mistakes a user can fix, and a stop the user asked for."""


class UserError(ValueError):
    """A bad config, flag, path or input. The message names the problem and the fix."""


class Interrupted(Exception):
    """The user stopped a command (Ctrl-C). The message says what was kept."""
