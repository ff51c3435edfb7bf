"""riskdesk.analytics."""
