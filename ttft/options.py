"""The one declaration of every option (placeholder; filled in below)."""


class ConfigError(ValueError):
    """An option that cannot be used; the message names the option and its value."""
