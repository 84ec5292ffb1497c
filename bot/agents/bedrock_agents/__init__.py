"""Amazon Bedrock Agents (``invoke_agent``): trace events become live turn events."""
