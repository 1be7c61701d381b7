"""The common prediction API: task-typed outputs, raw values, schemas, serving, client SDK.

Importable without Jupyter installed. Its contents come with the model-API issue; this
package reserves the ``mlfactory.model_api`` import name in the bundle.
"""
