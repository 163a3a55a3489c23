"""The CRDs as code: structural schemas from the API models, CEL rules, printer columns."""
