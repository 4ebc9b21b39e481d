package io.casscdcpg.lwwsink;

import java.util.List;

/**
 * The generated SQL for one target (a raw table or its tombstone table), as cdcctl renders it
 * (controlplane.core.ddl.generate_merge, controlplane.core.render.lww_sink_tables_config).
 *
 * @param target  the record topic after the sink's routing: the table, or {@code <table>__tombstones}
 * @param columns the record fields in the staging table's (and COPY's) order
 * @param lockSql session-level lock taken before the transaction (empty: none)
 * @param unlockSql releases {@code lockSql} after the commit or rollback (empty: none)
 */
public record TableSpec(String target, List<String> columns, String stageSql, String copySql,
        String lockSql, String prepareSql, String mergeSql, String unlockSql) {

    public TableSpec {
        columns = List.copyOf(columns);
    }

    /** Tombstone targets are applied before row targets in a batch (their trigger deletes stored rows). */
    public boolean isTombstones() {
        return target.endsWith(LwwSinkConfig.TOMBSTONES_SUFFIX);
    }
}
