"""riskdesk — customer risk management: identify, assess, control, monitor."""

__version__ = "0.1.0"
