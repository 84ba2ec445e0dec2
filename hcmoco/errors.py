"""The package's expected failures: each message is one line naming the file or key at fault."""


class HcmocoError(Exception):
    """Bad input or a broken contract that a user can fix; CLIs print it as one `error:` line."""
