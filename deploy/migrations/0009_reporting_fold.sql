-- 0009_reporting_fold: fewer day cells to read, and the lock the
-- consumers of different streams meet on.
--
-- Folding. The triggers of 0008 write a cell per partition (one consumer
-- transaction writes one partition, so two batches never wait on the same
-- row), so a period reads up to 16 rows where one would do: the guides
-- report read 22,799 cells for 30 days at 1 M customers. rpt_cells_fold()
-- moves every cell of a partition (>= 0) into the cell of partition -1
-- with the same (cell, day, key, k), which only the fold writes; the sum
-- over partitions, which every report reads, does not change. pond-reporting
-- folds on a timer (POND_CELLS_FOLD_MS); the triggers keep adding to the
-- partitions' cells (a delta may make one negative: only the sum counts).
-- The fold takes the cells' lock exclusive, as a rebuild does, so no
-- consumer transaction is between two statements of its batch while it
-- runs.
CREATE INDEX rpt_cells_unfolded ON rpt_cells (partition)
    WHERE partition >= 0;

CREATE FUNCTION rpt_cells_fold() RETURNS bigint
LANGUAGE sql AS $$
    SELECT rpt_cells_lock(true);
    WITH gone AS (DELETE FROM rpt_cells WHERE partition >= 0 RETURNING *),
    kept AS (INSERT INTO rpt_cells AS c SELECT cell, day, key, k, -1,
        sum(n), sum(incentive_fen), sum(orders), sum(net_fen) FROM gone
        GROUP BY cell, day, key, k
        ON CONFLICT (cell, day, key, k, partition) DO UPDATE SET
        n = c.n + EXCLUDED.n,
        incentive_fen = c.incentive_fen + EXCLUDED.incentive_fen,
        orders = c.orders + EXCLUDED.orders,
        net_fen = c.net_fen + EXCLUDED.net_fen)
    SELECT count(*) FROM gone;
$$;

-- rpt_partition_lock(p) takes the transaction lock of each customer
-- partition in p (ascending), after the cells' lock shared (always in that
-- order, so a fold or rebuild waiting for the cells' lock never closes a
-- cycle). A rollup that joins facts of two streams -- written by two
-- consumers in two transactions, neither seeing the other's uncommitted
-- rows -- is kept by triggers that each take this lock in their first
-- statement and only then read the other stream's facts: the two
-- transactions' spans from trigger to commit cannot overlap, so the later
-- trigger sees the earlier one's facts committed (a trigger function's
-- statements each take a new snapshot under READ COMMITTED).
CREATE FUNCTION rpt_partition_lock(p int[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rpt_cells_lock(false);
    PERFORM pg_advisory_xact_lock(8009, x)
        FROM (SELECT DISTINCT unnest(p) AS x ORDER BY 1) s;
END $$;
