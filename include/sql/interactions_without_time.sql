-- Interactions whose time is missing or unreadable (on SQLite: text that is no date/time, a number in
-- a date/time column) belong to no data interval, so no interval extraction reads them: each run
-- quarantines them with their reason instead of losing them silently. {raw_time} is the time column
-- as text, for the reason. Placeholders are filled from the validated column mapping.
SELECT {select_list}, {raw_time}
FROM {table}
WHERE {time_filter_column} IS NULL
ORDER BY {order_by}
