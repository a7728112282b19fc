"""Thin drivers around the core engine: the Faust worker, replay, and the traffic generator."""
