"""riskdesk.reports."""
