"""Accord: a secure inter-agency information-sharing broker for children's early help.

The packages mirror the architecture: ``envelope`` (sealed records), ``keys`` (keystore),
``policy`` (agreements and decisions), ``pipeline`` (the worker), ``audit`` (the
tamper-evident log), ``sdk`` (agency and recipient clients), ``console`` (governance web UI),
``events`` (the contact event contract) and ``devkafka`` (the embedded Apache Kafka).
Importing ``broker`` does nothing but define names.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
