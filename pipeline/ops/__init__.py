"""Operations: settings, broker, topics, metrics."""
