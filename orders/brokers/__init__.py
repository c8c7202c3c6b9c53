"""Brokers: the port (:mod:`orders.brokers.port`: what an adapter is told and answers), one
module per adapter (``manual``, ``paper``, ``alpaca``) and the reconciliation service that
routes orders and applies their fills (:mod:`orders.brokers.service`)."""
