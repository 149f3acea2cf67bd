"""Model registry access: the promotion ledger is the only writer of registry aliases."""
