"""The error type for mistakes a user can fix; the CLIs print its message on one line."""


class UserError(ValueError):
    """A bad config, flag, path or input. The message names the problem and the fix."""
