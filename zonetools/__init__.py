"""zonetools: the operator's publishing CLI for operator-enum."""
