"""File sharing (issue 13): manifests, content-addressed storage, multi-source transfer, thumbnails
and sealed files for private rooms.

Everything here is pure or an edge module with its own thread offloading, so the mesh, hub and UI
can wire it in without the parts depending on them. Wire format: docs/protocol.md ("Files"); threats: docs/security.md ("Files").
"""
