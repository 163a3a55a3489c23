"""PixelMesh: image processing on libvips workers fed by NATS JetStream, run by a Kubernetes operator.

What the parts share lives here: the API models (`pixelmesh.api`), the client and the CLI, the local
stack and the embedded NATS launcher. The worker, the operator and the gateway are sub-packages
kept in their own top-level folders.
"""
