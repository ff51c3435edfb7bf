"""riskdesk.web."""
