-- techpack rollback of the roles: nothing to undo. Roles are cluster-wide (other databases of
-- the cluster, and on Supabase the platform itself, use them), so they stay, as the first
-- migration's rollback leaves them too.
SELECT 1;
