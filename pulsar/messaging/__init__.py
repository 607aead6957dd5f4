"""The server side of the message-queue (AMQP) mode (spec: mq-protocol.md).

Imported only when `message_queue_url` is set (kombu is an optional extra):

* `bind`: `MessageQueueBinding`, one job service bound to its manager's queues;
* `outbox`: the durable FIFO every status update passes through;
* `ledger`: what the server remembers per message-queue job (duplicate guard, delivery);
* `wiring`: options -> one exchange and binding per manager, for `pulsar.core`.
"""
