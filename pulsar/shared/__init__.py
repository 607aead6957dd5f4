"""Pure logic both the client and the server need.

The server must never import `pulsar.client`; whatever both sides compute the same way
(file-action resolution, the output-collection plan, the multipart upload body) lives here.
"""
