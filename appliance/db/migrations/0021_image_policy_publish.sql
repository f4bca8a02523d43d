-- Per image: the district library each newly promoted version is published to
-- ('' = none), by `slate serve`'s library pass (issue 30: `slate image policy IMAGE
-- --publish LIBRARY`).
ALTER TABLE image_policy ADD COLUMN publish TEXT NOT NULL DEFAULT '';
