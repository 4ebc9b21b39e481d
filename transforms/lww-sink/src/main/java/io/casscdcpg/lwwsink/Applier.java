package io.casscdcpg.lwwsink;

import java.sql.SQLException;

/** Applies one batch in one transaction (the database seam: tests replace it with a function). */
interface Applier extends AutoCloseable {

    /** Commits the batch's rows, or throws with nothing committed. */
    void apply(Batch batch) throws SQLException;

    @Override
    void close();

    /** Opens an applier (a connection) for the task's settings. */
    interface Factory {
        Applier open(LwwSinkConfig config) throws SQLException;
    }
}
