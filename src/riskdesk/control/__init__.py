"""Control: exposure, credit limits, the order-check ladder, concentration, insurance,
avoidance policies and control actions. Pure logic on plain data; no I/O."""
