"""Monitor in real time: events, customer state, rules, alerts and cases (pure logic, no I/O)."""
