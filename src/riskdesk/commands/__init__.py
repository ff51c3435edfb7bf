"""riskdesk.commands."""
