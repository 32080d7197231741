-- Which tier held the entry a hit served: local, redis, remote... (NULL on a miss, and
-- on the events recorded before tiers were chained, which were all local).
ALTER TABLE events ADD COLUMN source TEXT;
