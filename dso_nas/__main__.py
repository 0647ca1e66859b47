"""``python -m dso_nas``: the ``dso-nas`` program."""
from .cli import entry

entry()
