-- The question as shared tiers get it (Redis, the remote): PII scrubbed (privacy.py), written
-- by the store that scrubbed the answer, so `thrift sync` pushes it without scrubbing each
-- question again (~7 ms each). NULL: stored with scrubbing off, or before this migration;
-- sync scrubs those as it pushes them when scrubbing is on. The local `question` stays raw.
ALTER TABLE entries ADD COLUMN shared_question TEXT;
