"""Pydantic v2 models of every record in CONTRACT.md; ``schemas/json/`` holds their JSON Schemas."""
