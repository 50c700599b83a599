"""Optional integrations with other libraries, each importable only with its extra installed."""
