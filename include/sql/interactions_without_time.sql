-- Interactions whose time is missing (or, on SQLite, unreadable) belong to no data interval, so no
-- interval extraction reads them; they are counted so that each run can say so instead of losing
-- them silently. Placeholders are filled from the validated column mapping.
SELECT count(*)
FROM {table}
WHERE {time_filter_column} IS NULL
