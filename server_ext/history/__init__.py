"""Notebook version control for the workspace (issue 7): git underneath, jupytext text
pairs beside each notebook, nbdime for diffs and merges.

``extension.py`` configures it for the server extension (``NotebookHistory``, ``setup``),
``handlers.py`` holds the REST routes, ``workspace.py`` the operations. See docs/history.md.
"""
