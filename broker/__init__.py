"""Accord: a secure inter-agency information-sharing broker for children's early help.

The packages mirror the architecture, in layers; a package imports only from layers below
its own (``tests/unit/test_layers.py`` holds the code to this):

1. ``errors`` ``_words`` ``_pg_live``             every error Accord raises on purpose; a
                                                  count and its noun; a PostgreSQL
                                                  connection that reconnects
2. ``_canonical`` ``_models`` ``_private`` ``_vectors`` ``config`` ``principals`` ``topics``
                                                  encodings, the models in a field's type,
                                                  private folders, test vectors, settings,
                                                  names
3. ``crypto`` ``events`` ``ops`` ``_http_guard``  primitives; the wire contracts; health
                                                  and metrics endpoints; what an HTTP
                                                  server allows a connection
4. ``envelope`` ``linkage`` ``synthetic``         sealed records; subject keys; demo data
5. ``keys`` ``kafka``                             the keystore; every Kafka client
6. ``policy`` ``devkafka``                        agreements and decisions; embedded Kafka
7. ``audit`` ``provision``                        the tamper-evident log's records and chains;
                                                  Kafka topics, logins and ACLs for a bundle
8. ``pipeline`` ``sdk`` ``governance`` ``deploy`` ``webauth``
                                                  the worker; agencies' and recipients'
                                                  clients; the index, reports and reviews;
                                                  deployment files from a bundle; web
                                                  sign-in, sessions and headers
9. ``console`` ``desk`` ``gateway``              the governance web UI; the recipients' desk;
                                                  an agency's HTTP publishing gateway
10. ``cli``                                       the command line, accord

Importing ``broker`` does nothing but define names.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
