"""Job services: identifiers, the job directory, persisted state, the job script, status.

Dependencies point one way: `pulsar.web` calls into here, this calls `pulsar.managers`.
The one module below them all is `jobfs` (safe access inside a job directory): managers
use it too for the files they open in job directories, and it imports nothing of ours but
`pulsar.errors`.
"""
