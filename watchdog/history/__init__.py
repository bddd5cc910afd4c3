"""Violation history for auditors: filters, queries, exports and their CLI commands."""
