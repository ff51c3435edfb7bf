"""riskdesk.store."""
