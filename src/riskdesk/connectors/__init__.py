"""riskdesk.connectors."""
