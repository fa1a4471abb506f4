"""Named limits for file sharing: every layer (manifest validation, blob store, transfer, serving)
enforces these same numbers, and docs/protocol.md ("Files") and docs/security.md list them."""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# ---- what a manifest may describe ----
DEFAULT_CHUNK_SIZE = 256 * KIB
# Allowed chunk sizes: powers of two in [MIN_CHUNK_SIZE, MAX_CHUNK_SIZE].
MIN_CHUNK_SIZE = 64 * KIB
MAX_CHUNK_SIZE = 1 * MIB
MAX_CHUNKS = 16_384  # so a Merkle proof has at most 14 hashes
MAX_FILE_BYTES = 4 * GIB  # = MAX_CHUNKS * DEFAULT_CHUNK_SIZE
MAX_FILES_PER_MESSAGE = 10
MAX_FILE_NAME_CHARS = 255
MAX_MIME_CHARS = 127
MAX_THUMB_BYTES = 64 * KIB  # a thumbnail is a small file of its own (manifest["thumb"])
MAX_VOICE_MS = 15 * 60 * 1000

# ---- fetching ----
MAX_CONCURRENT_FETCHES = 4  # files being downloaded at once per node ...
MAX_WAITING_FETCHES = 64  # ... besides these, kept open while nobody who has them is online
# Chunk requests outstanding to one holder, per file: a window that starts at START_IN_FLIGHT,
# grows by one per chunk answered within FAST_ANSWER_S of its request, up to MAX_IN_FLIGHT, and
# halves (never below START_IN_FLIGHT) on a slower answer or a timeout. On a fast link a deep
# pipeline hides each chunk's round trip and thread hand-offs; on a slow one requests never queue
# so long that they time out.
START_IN_FLIGHT_PER_HOLDER = 4
MAX_IN_FLIGHT_PER_HOLDER = 16
FAST_ANSWER_S = 1.0
BIG_FILE_BYTES = 32 * MIB  # senders use MAX_CHUNK_SIZE chunks from this size on (fewer round trips)
MAX_HOLDERS_PER_FETCH = 8  # holders asked at once for one file
# With fellow fetchers of a file, each asks the origin for its own stripe of the chunks (``Fetch.
# stripe``) and takes the rest from them; it asks the origin for chunks outside its stripe only
# after this long without a chunk or an announcement from any of them (they left or stalled), or
# once its own stripe has been complete as long again as it took, and at least this long (a
# fellow that slow is not waited for at its pace).
STRIPE_IDLE_S = 0.5
CHUNK_TIMEOUT_S = 30.0  # a request not answered by then is asked of someone else
MAX_STRIKES = 3  # timeouts / "busy" answers before a holder is set aside for this file
# Chunks being hashed or waiting for the disk, all downloads and holders together: past this the
# readers wait for the writers (so the senders' windows and TCP, not this memory, hold the rest).
MAX_UNWRITTEN_BYTES = 4 * MIB
DEFAULT_AUTO_DOWNLOAD_BYTES = 25 * 1000 * 1000
# Images and voice notes download without a click up to this (or the person's limit if higher):
# "always" without a cap let one 4 GiB "photo.png" fill every peer's quota.
AUTO_MEDIA_BYTES = DEFAULT_AUTO_DOWNLOAD_BYTES
# Auto-downloads never take the last quarter of the quota: files other people send cannot use up
# the room for a person's own shares and clicked downloads.
AUTO_RESERVE_DIVISOR = 4

# ---- serving ----
SERVE_BYTES_PER_MINUTE = 8 * GIB  # per requesting peer; ~143 MB/s: above gigabit Ethernet
SERVE_BURST_BYTES = 64 * MIB
# Queued requests beyond this = flood, connection dropped. An honest peer has at most
# MAX_CONCURRENT_FETCHES * MAX_IN_FLIGHT_PER_HOLDER = 64 outstanding with one holder, plus a few
# re-asked after a timeout (the window shrinks then): half as many again is the margin.
MAX_PENDING_REQUESTS_PER_PEER = 96
FILES_LANE_FRAMES_PER_SECOND = 200  # every text frame on a files connection, a token bucket ...
FILES_LANE_BURST = 400  # ... of this size (a chunk request costs one; chunks themselves do not)

# ---- storage ----
DEFAULT_QUOTA_BYTES = 2 * GIB

# Browser uploads on the host, by both routes (host-mode tabs over HTTP, static clients over the
# relay; each route keeps its own budget): what its uploads in progress may hold together, and
# the free space none of them may take.
UPLOADS_IN_FLIGHT_BYTES = 2 * GIB
UPLOAD_MIN_FREE_BYTES = 256 * MIB
