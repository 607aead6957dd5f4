"""Job services: identifiers, the job directory, persisted state, the job script, status.

Dependencies point one way: `pulsar.web` calls into here, this calls `pulsar.managers`.
"""
