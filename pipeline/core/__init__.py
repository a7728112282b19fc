"""The processing logic: plain, deterministic, event-time driven; no Kafka, no Faust, no wall clock."""
