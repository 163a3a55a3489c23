"""Federation across regions: health with hysteresis, weighted routing, failover and traffic shifts.

The policy modules here are pure: they take what was probed and measured and return what the
routing table and each region's status should say. The operator's handlers apply the result.
"""
