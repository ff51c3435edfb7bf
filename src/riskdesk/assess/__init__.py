"""riskdesk.assess."""
