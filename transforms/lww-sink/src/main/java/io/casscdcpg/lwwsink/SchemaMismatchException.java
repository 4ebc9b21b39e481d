package io.casscdcpg.lwwsink;

import org.apache.kafka.connect.errors.ConnectException;

/**
 * A row record of a newer table schema than the task's configured columns: it sets a column the
 * task's generated SQL does not know (a column added in Cassandra before {@code cdcctl schema
 * apply} updated the connector). Applying it with the old column list would lose that column, and
 * it is not the record's fault (the DLQ is wrong for it): the task retries it until the connector
 * config catches up, which restarts the task (decision 0139).
 */
public class SchemaMismatchException extends ConnectException {

    private static final long serialVersionUID = 1L;

    public SchemaMismatchException(String message) {
        super(message);
    }
}
