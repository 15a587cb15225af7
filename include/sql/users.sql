-- Users metadata as a full snapshot. Placeholders are filled from the validated column mapping;
-- ordering by USER_ID keeps duplicates adjacent and the output identical on every rerun.
SELECT {select_list}
FROM {table}
ORDER BY {order_by}
