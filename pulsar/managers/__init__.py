"""Back-ends that run job scripts: the local queue, DRMAA, batch-system CLIs, HTCondor.

Every back-end implements `pulsar.managers.base.Manager`; `pulsar.managers.registry`
maps the `type` option of a manager definition to its class.
"""
