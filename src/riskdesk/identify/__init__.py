"""riskdesk.identify."""
