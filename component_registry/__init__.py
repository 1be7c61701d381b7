"""The component registry: tested, versioned best-practice components.

Its format, search and built-in components come with the component-registry issue;
this package reserves the ``mlfactory.components`` import name in the bundle.
"""
