-- A premium membership's end (NULL: free, or premium bought before memberships had periods,
-- which does not end by itself), and the index the expiry task reads.

ALTER TABLE users ADD COLUMN membership_until INTEGER;
CREATE INDEX users_membership_until_idx ON users (membership_until) WHERE membership_until IS NOT NULL;
