"""riskdesk.monitor."""
