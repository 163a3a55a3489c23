"""The operator's side effects: the only modules that talk to the Kubernetes API or to NATS."""
