"""``python -m mlfactory.hub.service``: the old name of ``python -m mlfactory.service``."""

import warnings

from mlfactory.service.app import main

warnings.warn(
    "`python -m mlfactory.hub.service` is deprecated; run `python -m mlfactory.service`",
    DeprecationWarning,
    stacklevel=1,
)
main()
