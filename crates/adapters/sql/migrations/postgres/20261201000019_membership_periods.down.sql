DROP INDEX users_membership_until_idx;
ALTER TABLE users DROP COLUMN membership_until;
