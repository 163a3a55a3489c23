"""The HTTP gateway: upload, submit, wait, status, download, signed on-the-fly URLs, region routing.

`app.create_app(config)` builds the aiohttp application and `app.serve(config)` runs it; the
handlers (`handlers.py`) parse HTTP and call the job service (`service.py`), the only module that
talks to NATS. See docs/gateway.md.
"""
