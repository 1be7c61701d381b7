"""The hub side of mlfactory: the platform config, JupyterHub configuration, local
accounts and login pages, and the ``mlfactory`` command line."""
