"""Online models (River): text sentiment and churn. Dict in, dict out, no I/O; they pickle."""
