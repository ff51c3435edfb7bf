"""riskdesk.api."""
