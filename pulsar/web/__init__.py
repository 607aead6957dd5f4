"""The HTTP layer: routing, argument parsing, responses, errors, and our own WSGI server.

Nothing here knows how jobs work; every route parses its own arguments and calls one
`pulsar.jobs.service.JobService` method.  Dependencies point one way: web -> jobs.
"""
