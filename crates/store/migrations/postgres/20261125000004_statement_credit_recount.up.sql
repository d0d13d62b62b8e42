-- techpack: recount collection credits once per UPDATE statement instead of once per row.
-- Completing a wave of generation steps updates many files of one collection in one statement;
-- a row trigger recounted (and rewrote) the collection row once per file, all inside the
-- transaction that holds that row's lock. Transition tables let one recount cover the
-- statement. (A trigger with transition tables cannot name columns, so the filter on
-- credits_used moves into the query.)

CREATE OR REPLACE FUNCTION public.tech_files_after_credits_change_statement() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    PERFORM public.tech_file_collections_recount_credits(ARRAY(
        SELECT DISTINCT i.collection_id
          FROM new_rows AS n
          JOIN old_rows AS o ON o.id = n.id
          JOIN public.tech_file_collection_items AS i ON i.tech_file_id = n.id
         WHERE n.credits_used IS DISTINCT FROM o.credits_used));
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS tech_files_after_credits_change ON public.tech_files;
CREATE TRIGGER tech_files_after_credits_change AFTER UPDATE ON public.tech_files
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.tech_files_after_credits_change_statement();
