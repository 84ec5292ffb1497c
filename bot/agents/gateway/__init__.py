"""Jupyter Enterprise Gateway: conversations' kernels run on a gateway (``DATATHREAD_EXECUTOR=gateway``)."""
