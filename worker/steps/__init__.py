"""Pipeline steps: one module per operation, each `run(context, operation)` over one `Context`.

See `registry` for the list and `context` for how decoding is deferred to the first pixel step.
"""
