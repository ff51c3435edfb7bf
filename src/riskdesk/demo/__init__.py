"""riskdesk.demo."""
