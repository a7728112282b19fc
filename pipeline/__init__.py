"""Rapport: raw customer events in, one picture per customer and actions out."""
