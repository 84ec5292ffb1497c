"""The AWS deployment mode (``DATATHREAD_STORE=aws``): settings, clients, set-up and checks.

boto3 is imported only here and in the AWS-backed stores, and only when that mode is chosen.
"""
