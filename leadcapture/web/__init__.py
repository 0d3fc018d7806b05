"""Thin blueprints: parse input, call one service, map domain errors, commit once."""
