"""The API: the single source of truth for the CRDs, the messages between processes and their names.

Models here import nothing else of PixelMesh, so every part can depend on them and they can be
turned into CRD schemas, JSON files and wire messages without dragging a runtime along.
"""
