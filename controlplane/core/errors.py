"""The project's one error tree.

Every error a user can meet is a `CdcError`: a one-line message saying what went wrong, a hint
saying what to do, and the process exit code the CLI returns for it. Adapters convert their
library's exceptions into these at their boundary (``raise ... from exc``); the CLI has a single
handler that prints message and hint and exits with ``exit_code`` — never a traceback.

    CdcError                         exit 1  (generic failure)
    ├── UsageError                   exit 2  bad flags or arguments
    ├── ManifestError                exit 3  a manifest is invalid (carries file:line:column)
    ├── StackError                   exit 4  the local stack cannot be brought up
    │   ├── PortInUseError                   a port we need is taken (says by which process)
    │   ├── JdkError                         no suitable Java runtime
    │   ├── ArtifactError                    a Maven artifact could not be resolved
    │   └── ServiceStartError                a service died or never became ready (log tail)
    ├── ExternalServiceError         exit 5  a component answered badly or not at all
    │   ├── ConnectError                     Kafka Connect REST API
    │   │   └── ConnectConflictError         409 / rebalance in progress (temporary, retried)
    │   ├── CassandraError
    │   ├── PostgresError
    │   ├── KafkaError
    │   ├── RedisError
    │   └── SecretError                      Vault/OpenBao or a secret reference
    │   └── CassandraReadError               a read failed; ``kind`` says how (retry or not)
    ├── DifferencesFoundError        exit 6  verification found differences (not a crash)
    ├── IncompatibleSchemaError      exit 7  a table's schema changed incompatibly: that table
    │                                        was stopped, everything else was applied
    ├── NotVerifiedError             exit 8  verify could not read (or never finished) some token
    │                                        ranges: they are not verified, not different;
    │                                        `verify --resume RUN` does them again
    ├── FailedStateError             exit 9  get/describe: a connector or task is FAILED
    └── InternalError                exit 70 (EX_SOFTWARE) a bug: an exception no other class
                                             describes; the CLI's handler turns it into one line
                                             and the crash log's path (cli/crash.py)

`temporary` marks errors a retry may cure (kopf's TemporaryError/PermanentError idea): callers
that retry look at it instead of matching classes.
"""

from __future__ import annotations


class CdcError(Exception):
    """Base of every error cdcctl reports to a user."""

    exit_code: int = 1
    temporary: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CdcError):
    exit_code = 2


class ManifestError(CdcError):
    """An invalid manifest; `location` is ``file:line:column`` when known."""

    exit_code = 3

    def __init__(
        self, message: str, *, location: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location
        self.detail = message


class StackError(CdcError):
    exit_code = 4


class PortInUseError(StackError):
    pass


class JdkError(StackError):
    pass


class ArtifactError(StackError):
    pass


class ServiceStartError(StackError):
    pass


class ExternalServiceError(CdcError):
    exit_code = 5


class ConnectError(ExternalServiceError):
    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ConnectConflictError(ConnectError):
    temporary = True


class CassandraError(ExternalServiceError):
    pass


class CassandraReadError(CassandraError):
    """A read Cassandra did not answer: ``kind`` is one of
    `controlplane.core.read_retry.READ_ERROR_KINDS` (unavailable, read_timeout, read_failure,
    no_host, timeout, connection, invalid, other); ``host`` the replica asked, when known."""

    def __init__(
        self, message: str, *, kind: str, host: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        from controlplane.core.read_retry import is_retryable  # core; imported late (a cycle)

        self.kind = kind
        self.host = host
        self.temporary = is_retryable(kind)


class PostgresError(ExternalServiceError):
    pass


class KafkaError(ExternalServiceError):
    pass


class RedisError(ExternalServiceError):
    pass


class SecretError(ExternalServiceError):
    pass


class DifferencesFoundError(CdcError):
    exit_code = 6


class IncompatibleSchemaError(CdcError):
    """A Cassandra table changed in a way PostgreSQL cannot follow in place (a column's type or
    the primary key): that table was stopped, the rest of the work was done."""

    exit_code = 7


class NotVerifiedError(CdcError):
    """A verify run ended with token ranges not verified: a read failed after its retries, or
    a range never finished. Not a difference: resume the run."""

    exit_code = 8


class FailedStateError(CdcError):
    """`get`/`describe` found a connector or a task in state FAILED (the listing is printed
    first; the exit code makes it impossible to miss in scripts)."""

    exit_code = 9


class InternalError(CdcError):
    """Not the user's doing: an unexpected exception inside cdcctl (sysexits' EX_SOFTWARE)."""

    exit_code = 70
