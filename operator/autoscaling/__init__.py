"""Autoscaling: how many workers each pipeline needs in each region.

`decision` is the pure maths (no clock, no I/O, no Kubernetes or NATS): the operator feeds it
measurements and a small memory, and applies what it returns. `simulate` runs the same maths
against a queue model so its behaviour can be judged before it meets real traffic.
"""
