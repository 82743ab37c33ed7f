"""The one exception type for problems a user can fix (bad input, bad config).

Command-line entry points catch :class:`InputError` and print its message
without a traceback; anything else is a bug and keeps its traceback.
"""


class InputError(Exception):
    """A problem with the user's files or configuration, explained in the message."""
