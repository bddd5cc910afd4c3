"""watchdog: rule-based e-supervision of administrative approval (行政审批电子监察)."""

__version__ = "0.1.0"
