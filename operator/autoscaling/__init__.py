"""Autoscaling: how many workers each pipeline needs in each region.

Pure maths only (no clock, no I/O, no Kubernetes or NATS); `pixelmesh.operator.autoscaler` is the
loop that feeds it and applies what it returns.

- `decision`: the decision for one pipeline in one region (needs, damping, idle, activation) and
  the sharing of a capacity;
- `measure`: readings (backlog, stream sequence, worker totals) into measurements (rates over time);
- `policy`: a spec's `autoscaling` as the decision's policy, and the timing around it;
- `pool`: one region's decisions capped by its capacity;
- `simulate`: the decision against a queue model, to judge it before it meets real traffic.
"""
