"""The audit index's schema as plain, numbered SQL migrations (SQLite and PostgreSQL alike).

Each migration is a list of statements applied in one transaction, and its number is written to
``schema_version`` in that same transaction, so a half-applied migration cannot exist. Only
types and syntax both databases speak are used (TEXT, BIGINT, INTEGER, ``ON CONFLICT``); times
are stored as fixed-width UTC ISO 8601 text so they sort correctly as strings in both.

Tables:

- ``audit_records``: one row per verified record, keyed ``(chain, seq)``; ``body`` is the
  record's full canonical JSON, so the chain can be re-verified from the database alone. The
  other columns are derived from ``body`` for querying, and verification checks they still are.
- ``audit_subjects``: which subject keys each record names (subject access requests).
- ``chain_heads``: the newest indexed record of each chain, or where and why it broke.
- ``chain_checkpoints``: the newest *signed* checkpoint of each chain: the truncation reference.
  It lives apart from ``audit_records`` so that deleting or truncating records does not take
  the reference with it; it only ever moves forward, and its signature makes it unforgeable.
- ``kafka_offsets``: the next ``accord.audit`` offset per partition, committed with the rows
  it produced (never in a consumer group, so rows and position cannot diverge).
- ``override_reviews``: reviews of safeguarding overrides, filled only from
  ``override_reviewed`` audit records, so no review exists that the log does not hold; since
  (4), each review's finding and reference (a review written before the rule has a note).
- ``audit_refused`` (2): messages of the topic the indexer refused (undecodable, a foreign
  chain, a kind the writer may not write, a record no signed checkpoint covers, a rewrite of
  indexed history): their position, chain and seq when known, the reason and a digest.
- ``encompass_notices`` (3): the Operation Encompass notices, one row per decision that
  shared a ``police.domestic_incident`` with a school (``ENCOMPASS_NOTICE``): event, school,
  when it was decided, and the decision's place in its chain. Its acknowledgement is the first
  ``opened`` record of that event by that school, looked up in ``audit_records``; its deadline
  is computed when asked, from the school calendar then configured.
- ``verify_runs`` (6): each whole-index verification's result (``accord audit verify``, the
  console's *Verify every chain now*): when, by whom, from where, pass or the first broken
  chain, seq and problem, numbered in the order kept. Not derived from records, and not
  evidence: it keeps a failure on the console's pages until a later verification passes.
- (5) an index on ``audit_refused (topic, chain, seq)``: the indexer looks up a chain's refusals
  between its head and a checkpoint that does not link (``refusals_of_chain``), and anyone who
  can write to the topic can make that table large.
- (7) an index on ``audit_records (kafka_partition, kafka_offset)``: at every start the indexer
  reads the newest records it indexed below each partition's stored offset, and compares them
  with what the topic holds there now (``_index_restore``: Kafka restored older than the index,
  then written past its offsets).
"""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the initial schema.
    (
        """CREATE TABLE audit_records (
            chain TEXT NOT NULL,
            seq BIGINT NOT NULL,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            event_id TEXT,
            party TEXT,
            outcome TEXT,
            reason TEXT,
            agreement_id TEXT,
            purpose TEXT,
            hash TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            body TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL,
            kafka_offset BIGINT NOT NULL,
            PRIMARY KEY (chain, seq)
        )""",
        # Reports filter by kind and time; the disclosure log and reviews join on event and party.
        "CREATE INDEX audit_records_kind_at ON audit_records (kind, at)",
        "CREATE INDEX audit_records_event_party ON audit_records (event_id, party, kind)",
        """CREATE TABLE audit_subjects (
            subject_key TEXT NOT NULL,
            chain TEXT NOT NULL,
            seq BIGINT NOT NULL,
            PRIMARY KEY (subject_key, chain, seq)
        )""",
        """CREATE TABLE chain_heads (
            chain TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL,
            broken_seq BIGINT,
            error TEXT
        )""",
        """CREATE TABLE chain_checkpoints (
            chain TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            covers_seq BIGINT NOT NULL,
            body TEXT NOT NULL
        )""",
        """CREATE TABLE kafka_offsets (
            topic TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL,
            next_offset BIGINT NOT NULL,
            PRIMARY KEY (topic, kafka_partition)
        )""",
        """CREATE TABLE override_reviews (
            event_id TEXT NOT NULL,
            party TEXT NOT NULL,
            reviewed_by TEXT NOT NULL,
            note TEXT NOT NULL,
            reviewed_at TEXT NOT NULL,
            chain TEXT NOT NULL,
            seq BIGINT NOT NULL,
            PRIMARY KEY (event_id, party)
        )""",
    ),
    # 2: what the indexer refused.
    (
        """CREATE TABLE audit_refused (
            topic TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL,
            kafka_offset BIGINT NOT NULL,
            chain TEXT,
            seq BIGINT,
            reason TEXT NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (topic, kafka_partition, kafka_offset)
        )""",
    ),
    # 3: Operation Encompass notices (and those an index made before it already holds).
    (
        """CREATE TABLE encompass_notices (
            event_id TEXT NOT NULL,
            party TEXT NOT NULL,
            notified_at TEXT NOT NULL,
            chain TEXT NOT NULL,
            seq BIGINT NOT NULL,
            PRIMARY KEY (event_id, party)
        )""",
        "CREATE INDEX encompass_notices_notified ON encompass_notices (notified_at)",
        # The body is canonical JSON (no spaces, one spelling per value), so a substring
        # match on it is exact; both databases speak LIKE, not each other's JSON functions.
        "INSERT INTO encompass_notices (event_id, party, notified_at, chain, seq) "
        "SELECT event_id, party, at, chain, seq FROM audit_records WHERE kind = 'decided' "
        "AND outcome IN ('shared', 'shared_override') AND event_id IS NOT NULL "
        "AND party IS NOT NULL "
        """AND body LIKE '%"event_type":"police.domestic_incident"%' """
        """AND body LIKE '%"recipient_kind":"school"%' """
        "ON CONFLICT (event_id, party) DO NOTHING",
    ),
    # 4: a review's finding and reference (broker/governance/_review.py: no free text); a
    # review written before keeps its note, and these stay empty.
    (
        "ALTER TABLE override_reviews ADD COLUMN finding TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE override_reviews ADD COLUMN reference TEXT NOT NULL DEFAULT ''",
    ),
    # 5: a chain's refusals by seq, without reading every refusal of the topic.
    ("CREATE INDEX audit_refused_chain_seq ON audit_refused (topic, chain, seq)",),
    # 6: verifications' results, so a failed one stays on the console until one passes.
    (
        """CREATE TABLE verify_runs (
            run BIGINT PRIMARY KEY,
            at TEXT NOT NULL,
            by_whom TEXT NOT NULL,
            via TEXT NOT NULL,
            ok INTEGER NOT NULL,
            records BIGINT,
            chains BIGINT,
            chain TEXT,
            seq BIGINT,
            problem TEXT
        )""",
    ),
    # 7: a partition's newest indexed records, without reading every record of the index.
    ("CREATE INDEX audit_records_position ON audit_records (kafka_partition, kafka_offset)",),
)

SCHEMA_VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)"
)
