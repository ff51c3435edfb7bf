"""riskdesk.control."""
