"""The embedded node's log4j2 configuration: one log, ``<data>/kafka.log``, that rolls."""

from __future__ import annotations

from pathlib import Path

#: kafka.log rolls at 20 MB and keeps 10 files (kafka.log, kafka.log.1 to .9): every refused
#: request is a line in it ("Principal = User:X is Denied …", kafka.authorizer.logger), and a
#: suspended party's client retrying wrote 42 MB in 20 minutes to a log that never rolled.
LOG_FILE_BYTES, LOG_FILES = 20 * 1024 * 1024, 10
_LOG4J = """\
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = {size}
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = {kept}
appender.file.strategy.fileIndex = min
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = warn
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
"""


def log4j_config(log: Path) -> str:
    """The node's ``log4j2.properties``: everything at INFO to ``log``, rolled by size."""
    return _LOG4J.format(log=log, size=LOG_FILE_BYTES, kept=LOG_FILES - 1)
