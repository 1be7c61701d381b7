"""The platform service's custom JupyterHub scopes: their names and what the hub shows of them.

No imports: the hub config registers them (``JupyterHub.custom_scopes``) and grants the review
scope to servers' tokens without loading the service's store.
"""

BUDGETS_READ = "custom:mlfactory:budgets:read"
BUDGETS_WRITE = "custom:mlfactory:budgets:write"
USAGE_READ = "custom:mlfactory:usage:read"
COMPONENTS_REVIEW = "custom:mlfactory:components:review"

CUSTOM_SCOPES = {
    BUDGETS_READ: {"description": "Read mlfactory budgets, their spend and alert history."},
    BUDGETS_WRITE: {
        "description": "Create, change and remove mlfactory budgets.",
        "subscopes": [BUDGETS_READ],
    },
    USAGE_READ: {"description": "Read mlfactory usage and cost reports and running servers."},
    COMPONENTS_REVIEW: {
        "description": "Review components users publish: see their submissions and approve "
        "them into the shared namespace or reject them with a note."
    },
}
