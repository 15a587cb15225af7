-- Interactions for one data interval [start, end): an event at `end` belongs to the next interval.
-- {select_list}, {table}, {time_filter_column} and {order_by} are filled from the validated column
-- mapping (quoted identifiers and per-dialect expressions); {start} and {end} become the driver's
-- bound parameters, never literal text. Ordering by the record key keeps duplicates adjacent, so the
-- extractor finds them holding one record, and makes the output identical on every rerun.
SELECT {select_list}
FROM {table}
WHERE {time_filter_column} >= {start} AND {time_filter_column} < {end}
ORDER BY {order_by}
