"""Bedrock Converse: datathread's own tool loop on ``converse_stream``, code run by a ``CodeExecutor``."""
